package tsa

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/tsa/tsatest"
)

func authorityOf(s *tsatest.Server) Authority {
	return Authority{Name: s.Authority.Name, URL: s.URL, Cert: s.Authority.Cert}
}

// TestStampWithOpenSSL asks a real RFC 3161 authority (openssl ts -reply) for a token and
// verifies it offline against the authority's certificate.
func TestStampWithOpenSSL(t *testing.T) {
	srv := tsatest.NewAuthority(t, "OpenSSL TSA").ServeOpenSSL(t)
	digest := sha256.Sum256([]byte("register head"))
	c := &Client{Authorities: []Authority{authorityOf(srv)}, Timeout: 10 * time.Second}
	s, err := c.Stamp(context.Background(), digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if s.Authority != "OpenSSL TSA" || time.Since(s.Info.Time) > time.Minute {
		t.Fatalf("stamped %+v", s.Info)
	}
	if _, err := Verify(s.Token, digest[:], nil); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("verified with no certificate: %v", err)
	}
	other := tsatest.NewAuthority(t, "OpenSSL TSA")
	if _, err := Verify(s.Token, digest[:], []*x509.Certificate{other.Cert}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("verified against another authority's certificate: %v", err)
	}
}

// TestStampTriesAuthoritiesInOrder: a failing authority, then one that hangs past the
// timeout, then a working one.
func TestStampTriesAuthoritiesInOrder(t *testing.T) {
	down := tsatest.NewAuthority(t, "Down TSA").ServeInProcess(t)
	down.Down()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the handler return before Close waits for it
	good := tsatest.NewAuthority(t, "Good TSA").ServeOpenSSL(t)
	// The hanging authority costs the whole timeout; the good one (an openssl process per
	// request) must answer within it even on a loaded machine.
	c := &Client{Timeout: 2 * time.Second, Authorities: []Authority{
		authorityOf(down), {Name: "Hanging TSA", URL: hang.URL, Cert: down.Authority.Cert}, authorityOf(good)}}
	digest := sha256.Sum256([]byte("head"))
	start := time.Now()
	s, err := c.Stamp(context.Background(), digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if s.Authority != "Good TSA" || down.Requests() != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("stamped by %s after %v, down asked %d times", s.Authority, time.Since(start), down.Requests())
	}
}

func TestStampFailsWhenEveryAuthorityFails(t *testing.T) {
	a := tsatest.NewAuthority(t, "A").ServeInProcess(t)
	a.Down()
	impostor := tsatest.NewAuthority(t, "B").ServeInProcess(t)
	wrongCert := authorityOf(impostor)
	wrongCert.Cert = a.Authority.Cert // the configured certificate is not the one that signs
	c := &Client{Authorities: []Authority{authorityOf(a), wrongCert}}
	digest := sha256.Sum256([]byte("head"))
	_, err := c.Stamp(context.Background(), digest[:])
	if !errors.Is(err, ErrNoAuthority) || !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("got %v", err)
	}
	if _, err := (&Client{}).Stamp(context.Background(), digest[:]); !errors.Is(err, ErrNoAuthority) {
		t.Fatalf("no authority: %v", err)
	}
}
