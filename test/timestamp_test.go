package test

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/mailtest"
	"github.com/urne-vote/urne/tsa/tsatest"
)

// startWith starts every node of c after edit has changed its configuration.
func startWith(t *testing.T, c *harness.Cluster, edit func(cfg *node.Config)) {
	t.Helper()
	for _, n := range c.File.Nodes {
		cfg := c.Config(n.ID)
		edit(&cfg)
		if err := c.TryStartConfig(cfg); err != nil {
			t.Fatalf("start %s: %v", n.ID, err)
		}
	}
	c.WaitLeader()
}

// withAuthority points every node at one timestamp authority, stamping often.
func withAuthority(t *testing.T, srv *tsatest.Server) func(cfg *node.Config) {
	certPath := filepath.Join(t.TempDir(), "tsa.crt")
	if err := os.WriteFile(certPath, srv.Authority.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(cfg *node.Config) {
		cfg.TimestampAuthorities = []node.TimestampAuthority{{Name: srv.Authority.Name, URL: srv.URL, Cert: certPath}}
		cfg.TimestampInterval = node.Duration(300 * time.Millisecond)
		cfg.TimestampRetry = node.Duration(200 * time.Millisecond)
		cfg.TimestampTimeout = node.Duration(2 * time.Second)
	}
}

// exportOf exports the register of the cluster as `urne audit export` does.
func exportOf(t *testing.T, c *harness.Cluster) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := audit.NewWriter(&buf, audit.Header{Election: "test-election"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Client("organizer").RegisterEntries(harness.Context(t, 30*time.Second), 1, func(_ client.RegisterInfo, raw []byte) error {
		var e audit.Entry
		if err := e.UnmarshalBinary(raw); err != nil {
			return err
		}
		return w.Write(&e)
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return buf.Bytes()
}

// metric reads one sample of node id's /metrics; -1 when absent.
func metric(t testing.TB, c *harness.Cluster, id, sample string) float64 {
	t.Helper()
	n, _ := c.File.Node(id)
	resp, err := http.Get("http://" + n.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestTimestampAuthorityDown stamps the register with a real authority (openssl ts), takes
// the authority down while voters keep casting, and brings it back: no cast waits, the gap is
// recorded, stamping resumes, and the export verifies offline against the authority's
// certificate.
func TestTimestampAuthorityDown(t *testing.T) {
	srv := tsatest.NewAuthority(t, "Test TSA").ServeOpenSSL(t)
	mail := mailtest.Start(t)
	c := harness.Prepare(t, "3")
	stampOften := withAuthority(t, srv)
	startWith(t, c, func(cfg *node.Config) {
		stampOften(cfg)
		cfg.Delivery = node.DeliveryConfig{Email: []node.SMTPConfig{{Addr: mail.Addr, From: "urne@example.org", TLS: node.SMTPPlain}}}
	})
	sealAndOpen(t, c, 200)
	stamps := func() (ok, failed int) {
		out := string(exportOf(t, c))
		return strings.Count(out, `"stamp":{`), strings.Count(out, `"action":"timestamp","object":"register entry`) - strings.Count(out, `"stamp":{`)
	}
	harness.Poll(t, 20*time.Second, func() error {
		if ok, _ := stamps(); ok == 0 {
			return fmt.Errorf("no timestamp recorded yet")
		}
		return nil
	})

	srv.Down()
	app := c.Client("app")
	ctx := harness.Context(t, time.Minute)
	next := 1
	castSome := func(n int) {
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("v%06d", next)
			next++
			start := time.Now()
			if _, err := app.Cast(ctx, v, ballotOf(v)); err != nil {
				t.Fatalf("cast %s while the authority is down: %v", v, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("cast %s waited %v", v, d)
			}
		}
	}
	okBefore, _ := stamps()
	harness.Poll(t, 20*time.Second, func() error {
		castSome(5)
		if _, failed := stamps(); failed < 2 {
			return fmt.Errorf("%d failures recorded", failed)
		}
		return nil
	})
	leader := c.WaitLeader()
	if v := metric(t, c, leader, `urne_timestamp_requests_total{result="failed"}`); v < 2 {
		t.Fatalf("failed timestamp requests counted %v", v)
	}
	// The first failure of the gap is an alert to the bureau and the organizers; the retries are not.
	alert := "Subject: [urne] Alerte, vote test-election : timestamp, register entry"
	for _, to := range []string{bureauEmail, organizerEmail} {
		harness.Poll(t, 20*time.Second, func() error {
			_, err := mail.Find("To: "+to, alert, "attempt 1: ", "voting goes on")
			return err
		})
	}
	if _, err := mail.Find(alert, "attempt 2: "); err == nil {
		t.Fatal("a retry was mailed")
	}

	srv.Up()
	harness.Poll(t, 20*time.Second, func() error {
		castSome(2)
		if ok, _ := stamps(); ok <= okBefore {
			return fmt.Errorf("stamping has not resumed")
		}
		return nil
	})
	rep, err := audit.Verify(bytes.NewReader(exportOf(t, c)), []*x509.Certificate{srv.Authority.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Stamps) < 2 {
		t.Fatalf("report %+v", rep)
	}
}
