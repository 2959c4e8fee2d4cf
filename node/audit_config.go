package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"time"

	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/tsa"
)

// Duration is a time.Duration written as "10m" in the config file.
type Duration time.Duration

// UnmarshalJSON reads "90s", "10m", ...
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as "10m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// TimestampAuthority is one RFC 3161 authority of the config.
type TimestampAuthority struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Cert is the PEM certificate the authority's tokens must verify against.
	Cert string `json:"cert"`
}

// AlertMailConfig names the fallback relay of integrity alerts: alerts go to the bureau and
// the organizers through the replicated outbox (the providers of Delivery); this relay gets
// only those the cluster could not record, the operators' address for a cluster without quorum.
type AlertMailConfig struct {
	// Server is host:port of an SMTP relay; empty disables alert emails.
	Server string   `json:"server,omitempty"`
	From   string   `json:"from,omitempty"`
	To     []string `json:"to,omitempty"`
}

// AuditConfig is the part of Config about the activity register, trusted timestamps and the
// integrity check. Its fields sit at the top level of the config file.
type AuditConfig struct {
	// TimestampAuthorities are asked in order to stamp the register's head.
	TimestampAuthorities []TimestampAuthority `json:"timestamp_authorities,omitempty"`
	// TimestampInterval is how often the leader stamps the register's head (it also stamps
	// after the lifecycle's milestones).
	TimestampInterval Duration `json:"timestamp_interval,omitempty"`
	// TimestampRetry is the wait before asking again after every authority failed.
	TimestampRetry Duration `json:"timestamp_retry,omitempty"`
	// TimestampTimeout bounds one request to one authority.
	TimestampTimeout Duration `json:"timestamp_timeout,omitempty"`
	// IntegrityInterval is how often every node runs its integrity check.
	IntegrityInterval Duration `json:"integrity_interval,omitempty"`
	// SMTP receives the alert of a failed integrity check the cluster could not record.
	SMTP AlertMailConfig `json:"smtp,omitempty"`
	// BinaryPath is the binary the integrity check hashes; the running executable by default.
	BinaryPath string `json:"binary_path,omitempty"`
}

// defaultAuditConfig holds the defaults of the audit settings.
func defaultAuditConfig() AuditConfig {
	return AuditConfig{
		TimestampInterval: Duration(10 * time.Minute),
		TimestampRetry:    Duration(time.Minute),
		TimestampTimeout:  Duration(tsa.DefaultTimeout),
		IntegrityInterval: Duration(time.Minute),
	}
}

// resolvePaths makes the audit settings' paths absolute against the config file's folder.
func (a *AuditConfig) resolvePaths(base string) {
	for i := range a.TimestampAuthorities {
		if p := a.TimestampAuthorities[i].Cert; p != "" && !filepath.IsAbs(p) {
			a.TimestampAuthorities[i].Cert = filepath.Join(base, p)
		}
	}
	if a.BinaryPath != "" && !filepath.IsAbs(a.BinaryPath) {
		a.BinaryPath = filepath.Join(base, a.BinaryPath)
	}
}

// validate reports every problem of the audit settings.
func (a *AuditConfig) validate() []error {
	var errs []error
	for name, d := range map[string]Duration{"timestamp_interval": a.TimestampInterval, "timestamp_retry": a.TimestampRetry,
		"timestamp_timeout": a.TimestampTimeout, "integrity_interval": a.IntegrityInterval} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	for i, t := range a.TimestampAuthorities {
		if t.Name == "" || t.URL == "" || t.Cert == "" {
			errs = append(errs, fmt.Errorf("timestamp_authorities[%d]: name, url and cert are required", i))
		}
	}
	if a.SMTP.Server != "" {
		if _, err := mail.ParseAddress(a.SMTP.From); err != nil {
			errs = append(errs, fmt.Errorf("smtp.from %q: %v", a.SMTP.From, err))
		}
		if len(a.SMTP.To) == 0 {
			errs = append(errs, errors.New("smtp.to: name at least one recipient of integrity alerts"))
		}
		for _, to := range a.SMTP.To {
			if _, err := mail.ParseAddress(to); err != nil {
				errs = append(errs, fmt.Errorf("smtp.to %q: %v", to, err))
			}
		}
	}
	return errs
}

// loadAuthorities reads the authorities' certificates.
func (a *AuditConfig) loadAuthorities() ([]tsa.Authority, error) {
	var out []tsa.Authority
	for _, t := range a.TimestampAuthorities {
		raw, err := os.ReadFile(t.Cert)
		if err != nil {
			return nil, fmt.Errorf("timestamp authority %s: %w", t.Name, err)
		}
		cert, err := pki.ParseCertificatePEM(raw)
		if err != nil {
			return nil, fmt.Errorf("timestamp authority %s: certificate %s: %w", t.Name, t.Cert, err)
		}
		out = append(out, tsa.Authority{Name: t.Name, URL: t.URL, Cert: cert})
	}
	return out, nil
}
