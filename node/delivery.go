package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// Delivery sends the replicated outbox's messages. Each channel has a primary provider and
// a backup, tried in that order: the seed names one of each for email and for SMS.
type Delivery struct {
	Email []EmailProvider
	SMS   []SMSProvider
}

// EmailProvider delivers one email.
type EmailProvider interface {
	Name() string
	SendEmail(ctx context.Context, to, subject, body string) error
}

// SMSProvider delivers one text message.
type SMSProvider interface {
	Name() string
	SendSMS(ctx context.Context, to, body string) error
}

// ErrNoProvider: the channel has no provider configured; the message stays in the outbox.
var ErrNoProvider = errors.New("no delivery provider configured")

// sendEmail tries each provider in turn and names the one that delivered, or every failure.
func (d *Delivery) sendEmail(ctx context.Context, to, subject, body string) (string, error) {
	var errs []error
	for _, p := range d.Email {
		if err := p.SendEmail(ctx, to, subject, body); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			continue
		}
		return p.Name(), nil
	}
	if len(d.Email) == 0 {
		return "", fmt.Errorf("email: %w", ErrNoProvider)
	}
	return "", errors.Join(errs...)
}

func (d *Delivery) sendSMS(ctx context.Context, to, body string) (string, error) {
	var errs []error
	for _, p := range d.SMS {
		if err := p.SendSMS(ctx, to, body); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
			continue
		}
		return p.Name(), nil
	}
	if len(d.SMS) == 0 {
		return "", fmt.Errorf("sms: %w", ErrNoProvider)
	}
	return "", errors.Join(errs...)
}

// Modes of an SMTP provider's TLS.
const (
	SMTPStartTLS = "starttls"
	SMTPImplicit = "implicit"
	SMTPPlain    = "none"
)

// SMTPConfig is one SMTP relay.
type SMTPConfig struct {
	// Addr is host:port.
	Addr string `json:"addr"`
	From string `json:"from"`
	// TLS is starttls (the default, required), implicit (SMTPS), or none (a relay on
	// loopback only: credentials and codes would cross the network in clear otherwise).
	TLS          string `json:"tls,omitempty"`
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	// CAFile verifies the relay's certificate instead of the system roots.
	CAFile string `json:"ca_file,omitempty"`
}

// SMSConfig is one HTTP SMS gateway: a JSON POST {"from","to","text"} with a bearer token.
type SMSConfig struct {
	URL       string `json:"url"`
	Sender    string `json:"sender,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
}

// DeliveryConfig lists the providers of each channel, primary first.
type DeliveryConfig struct {
	Email []SMTPConfig `json:"email,omitempty"`
	SMS   []SMSConfig  `json:"sms,omitempty"`
}

// secretPaths are the file paths of the configuration, for resolving against the config's folder.
func (c *DeliveryConfig) secretPaths() []*string {
	var out []*string
	for i := range c.Email {
		out = append(out, &c.Email[i].PasswordFile, &c.Email[i].CAFile)
	}
	for i := range c.SMS {
		out = append(out, &c.SMS[i].TokenFile)
	}
	return out
}

// validate reports the first problem of the delivery configuration.
func (c DeliveryConfig) validate() error {
	for i, e := range c.Email {
		if _, _, err := net.SplitHostPort(e.Addr); err != nil || e.From == "" {
			return fmt.Errorf("delivery.email[%d]: addr must be host:port and from is required", i)
		}
		switch e.TLS {
		case "", SMTPStartTLS, SMTPImplicit, SMTPPlain:
		default:
			return fmt.Errorf("delivery.email[%d]: tls %q: want starttls, implicit or none", i, e.TLS)
		}
	}
	for i, s := range c.SMS {
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://127.") && !strings.HasPrefix(s.URL, "http://localhost") {
			return fmt.Errorf("delivery.sms[%d]: url %q must be https (plain http only on loopback)", i, s.URL)
		}
	}
	return nil
}

// newDelivery builds the providers of a configuration, reading their secrets.
func newDelivery(c DeliveryConfig) (*Delivery, error) {
	d := &Delivery{}
	for i, e := range c.Email {
		p, err := newSMTPProvider(fmt.Sprintf("email-%d(%s)", i, e.Addr), e)
		if err != nil {
			return nil, err
		}
		d.Email = append(d.Email, p)
	}
	for i, s := range c.SMS {
		p, err := newHTTPSMSProvider(fmt.Sprintf("sms-%d(%s)", i, s.URL), s)
		if err != nil {
			return nil, err
		}
		d.SMS = append(d.SMS, p)
	}
	return d, nil
}

func readSecretFile(path, what string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// smtpProvider sends through an SMTP relay with net/smtp.
type smtpProvider struct {
	name     string
	cfg      SMTPConfig
	password string
	tls      *tls.Config
}

func newSMTPProvider(name string, cfg SMTPConfig) (*smtpProvider, error) {
	password, err := readSecretFile(cfg.PasswordFile, "smtp password_file")
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		if tc.RootCAs, err = loadCertPool(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	return &smtpProvider{name: name, cfg: cfg, password: password, tls: tc}, nil
}

func (p *smtpProvider) Name() string { return p.name }

// SendEmail runs one SMTP transaction, within ctx's deadline.
func (p *smtpProvider) SendEmail(ctx context.Context, to, subject, body string) error {
	if strings.ContainsAny(to+subject, "\r\n") {
		return errors.New("recipient or subject holds a line break")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if p.cfg.TLS == SMTPImplicit {
		conn = tls.Client(conn, p.tls)
	}
	c, err := smtp.NewClient(conn, p.tls.ServerName)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := p.secure(c); err != nil {
		return err
	}
	if err := c.Mail(p.cfg.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	if err := writeMessage(c, p.cfg.From, to, subject, body); err != nil {
		return err
	}
	return c.Quit()
}

// secure upgrades to TLS unless the relay is configured plain, and authenticates if asked.
func (p *smtpProvider) secure(c *smtp.Client) error {
	if p.cfg.TLS == "" || p.cfg.TLS == SMTPStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the relay does not offer STARTTLS, which this provider requires")
		}
		if err := c.StartTLS(p.tls); err != nil {
			return err
		}
	}
	if p.cfg.Username == "" {
		return nil
	}
	return c.Auth(smtp.PlainAuth("", p.cfg.Username, p.password, p.tls.ServerName))
}

func writeMessage(c *smtp.Client, from, to, subject, body string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	headers := []string{
		"From: " + from, "To: " + to, "Subject: " + mime.QEncoding.Encode("utf-8", subject),
		"Date: " + time.Now().UTC().Format(time.RFC1123Z), "Message-ID: <" + hex.EncodeToString(id[:]) + "@urne>",
		"MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
	}
	msg := strings.Join(headers, "\r\n") + "\r\n\r\n" + strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// httpSMSProvider posts to an SMS gateway.
type httpSMSProvider struct {
	name   string
	cfg    SMSConfig
	token  string
	client *http.Client
}

func newHTTPSMSProvider(name string, cfg SMSConfig) (*httpSMSProvider, error) {
	token, err := readSecretFile(cfg.TokenFile, "sms token_file")
	if err != nil {
		return nil, err
	}
	return &httpSMSProvider{name: name, cfg: cfg, token: token, client: &http.Client{}}, nil
}

func (p *httpSMSProvider) Name() string { return p.name }

// SendSMS posts the message; any answer but 2xx is a failure.
func (p *httpSMSProvider) SendSMS(ctx context.Context, to, body string) error {
	payload, err := json.Marshal(map[string]string{"from": p.cfg.Sender, "to": to, "text": body})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("gateway answered %s: %s", resp.Status, bytes.TrimSpace(detail))
	}
	return nil
}
