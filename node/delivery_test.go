package node

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// relay is a real SMTP server on loopback that records messages, or refuses recipients.
type relay struct {
	addr   string
	refuse bool
	mu     sync.Mutex
	got    []string
}

func startRelay(t *testing.T, refuse bool) *relay {
	t.Helper()
	r := &relay{refuse: refuse}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{r: r}, nil }))
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *relay) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

type relaySession struct{ r *relay }

func (s *relaySession) Reset()                               {}
func (s *relaySession) Logout() error                        { return nil }
func (s *relaySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *relaySession) Rcpt(string, *smtp.RcptOptions) error {
	if s.r.refuse {
		return &smtp.SMTPError{Code: 550, Message: "no such user here"}
	}
	return nil
}

func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.r.mu.Lock()
	s.r.got = append(s.r.got, string(b))
	s.r.mu.Unlock()
	return err
}

func smtpOn(t *testing.T, addr, mode string) EmailProvider {
	t.Helper()
	p, err := newSMTPProvider("relay "+addr, SMTPConfig{Addr: addr, From: "vote@example.org", TLS: mode})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEmailFailsOverToTheBackupRelay(t *testing.T) {
	primary, backup := startRelay(t, true), startRelay(t, false)
	d := &Delivery{Email: []EmailProvider{smtpOn(t, primary.addr, SMTPPlain), smtpOn(t, backup.addr, SMTPPlain)}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	used, err := d.sendEmail(ctx, "alice@example.org", "Votre identifiant : élection CT", "Bonjour,\nligne 2\n")
	if err != nil || !strings.Contains(used, backup.addr) {
		t.Fatalf("sent through %q, %v; want the backup", used, err)
	}
	msg := strings.ReplaceAll(backup.messages()[0], "\r\n", "\n")
	for _, want := range []string{"To: alice@example.org", "Subject: =?utf-8?q?Votre_identifiant_:_=C3=A9lection_CT?=", "\n\nBonjour,\nligne 2\n"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message lacks %q:\n%s", want, msg)
		}
	}
	// Both down: the error names each provider.
	d.Email = d.Email[:1]
	if _, err := d.sendEmail(ctx, "alice@example.org", "s", "b"); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("primary alone: %v", err)
	}
	if _, err := (&Delivery{}).sendEmail(ctx, "a@b", "s", "b"); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("no provider: %v", err)
	}
}

func TestEmailRequiresStartTLSByDefault(t *testing.T) {
	plain := startRelay(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := smtpOn(t, plain.addr, "").SendEmail(ctx, "alice@example.org", "s", "b")
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("a relay without STARTTLS: %v", err)
	}
	if len(plain.messages()) != 0 {
		t.Fatal("a message went out in clear")
	}
	if err := smtpOn(t, plain.addr, SMTPPlain).SendEmail(ctx, "alice@example.org", "line\r\nBcc: x@y", "b"); err == nil {
		t.Fatal("a subject with a line break was sent")
	}
}

func TestSMSFailsOverToTheBackupGateway(t *testing.T) {
	var got []string
	var mu sync.Mutex
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("Authorization")+" "+string(b))
		mu.Unlock()
	}))
	defer up.Close()
	primary, _ := newHTTPSMSProvider("down", SMSConfig{URL: down.URL})
	backup := &httpSMSProvider{name: "up", cfg: SMSConfig{URL: up.URL, Sender: "URNE"}, token: "t0k", client: http.DefaultClient}
	d := &Delivery{SMS: []SMSProvider{primary, backup}}
	used, err := d.sendSMS(context.Background(), "+33612345678", "Code 123456")
	if err != nil || used != "up" {
		t.Fatalf("sent through %q, %v", used, err)
	}
	if len(got) != 1 || got[0] != `Bearer t0k {"from":"URNE","text":"Code 123456","to":"+33612345678"}` {
		t.Fatalf("gateway received %q", got)
	}
	d.SMS = d.SMS[:1]
	if _, err := d.sendSMS(context.Background(), "+33612345678", "x"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("primary alone: %v", err)
	}
}

func TestDeliveryConfigValidation(t *testing.T) {
	bad := []DeliveryConfig{
		{Email: []SMTPConfig{{Addr: "smtp.example.org", From: "a@b"}}},
		{Email: []SMTPConfig{{Addr: "smtp.example.org:587"}}},
		{Email: []SMTPConfig{{Addr: "smtp.example.org:587", From: "a@b", TLS: "maybe"}}},
		{SMS: []SMSConfig{{URL: "http://sms.example.org/send"}}},
	}
	for i, c := range bad {
		if err := c.validate(); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	good := DeliveryConfig{Email: []SMTPConfig{{Addr: "smtp.example.org:587", From: "a@b"}}, SMS: []SMSConfig{{URL: "https://sms.example.org/send"}}}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCleanDetail(t *testing.T) {
	long := strings.Repeat("é", 300)
	if got := cleanDetail(long); len(got) > maxDetailLen || !strings.HasSuffix(got, "é") {
		t.Fatalf("cut %d bytes, ends %q", len(got), got[len(got)-2:])
	}
	if got := cleanDetail("a\nb\x00c"); got != "a b c" {
		t.Fatalf("cleanDetail = %q", got)
	}
	if deliveryBackoff(0) != time.Second || deliveryBackoff(20) != time.Minute {
		t.Fatal("backoff bounds")
	}
}

// BenchmarkHashSecret is the cost the receiving node pays per voter of an import.
func BenchmarkHashSecret(b *testing.B) {
	s, err := newSecrets(make([]byte, 32), defaultSecretHashCost)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.hash("1234"); err != nil {
			b.Fatal(err)
		}
	}
}
