package tsatest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is an authority served over HTTP; Down makes it answer 503 until Up.
type Server struct {
	*httptest.Server
	Authority *Authority
	down      atomic.Bool
	requests  atomic.Int64
}

// Down makes the authority refuse every request (a failed service, not a closed port).
func (s *Server) Down() { s.down.Store(true) }

// Up ends Down.
func (s *Server) Up() { s.down.Store(false) }

// Requests counts the requests received, answered or not.
func (s *Server) Requests() int64 { return s.requests.Load() }

// ServeOpenSSL runs a real RFC 3161 authority: each request is answered by `openssl ts
// -reply` with the authority's key. The test is skipped when openssl is not installed.
func (a *Authority) ServeOpenSSL(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed: the real RFC 3161 authority of this test is `openssl ts -reply` (apt-get install openssl)")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{"tsa.crt": a.CertPEM, "tsa.key": a.KeyPEM, "serial": []byte("01\n"),
		"openssl.cnf": []byte(opensslConfig(dir))})
	var mu sync.Mutex // openssl keeps its serial number in a file
	reply := func(req []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		return opensslReply(bin, dir, req)
	}
	return a.serve(t, reply)
}

// ServeInProcess serves the authority from this process (no openssl needed).
func (a *Authority) ServeInProcess(t testing.TB) *Server {
	t.Helper()
	return a.serve(t, a.Reply)
}

func (a *Authority) serve(t testing.TB, reply func([]byte) ([]byte, error)) *Server {
	s := &Server{Authority: a}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.down.Load() {
			http.Error(w, "authority down for the test", http.StatusServiceUnavailable)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil || r.Header.Get("Content-Type") != "application/timestamp-query" {
			http.Error(w, "want an application/timestamp-query body", http.StatusBadRequest)
			return
		}
		resp, err := reply(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(resp)
	}))
	t.Cleanup(s.Close)
	return s
}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func opensslConfig(dir string) string {
	return fmt.Sprintf(`[ tsa ]
default_tsa = urne_test_tsa

[ urne_test_tsa ]
dir = %s
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`, dir)
}

// opensslReply runs `openssl ts -reply` on one request.
func opensslReply(bin, dir string, req []byte) ([]byte, error) {
	query, out := filepath.Join(dir, "query.tsq"), filepath.Join(dir, "reply.tsr")
	if err := os.WriteFile(query, req, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "ts", "-reply", "-config", filepath.Join(dir, "openssl.cnf"), "-queryfile", query, "-out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("openssl ts -reply: %v: %s", err, stderr.String())
	}
	return os.ReadFile(out)
}
