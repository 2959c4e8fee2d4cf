package test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
)

// mailbox is a real SMTP server on loopback that keeps what it receives, or refuses every
// recipient when failing is set (a primary provider that is down).
type mailbox struct {
	addr    string
	failing atomic.Bool
	mu      sync.Mutex
	mail    map[string][]string // recipient -> bodies
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	m := &mailbox{mail: map[string][]string{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: m}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return m
}

type mailSession struct {
	box *mailbox
	to  []string
}

func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }
func (s *mailSession) Mail(string, *smtp.MailOptions) error {
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.box.failing.Load() {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "relay out of service"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	for _, to := range s.to {
		s.box.mail[to] = append(s.box.mail[to], strings.ReplaceAll(string(body), "\r\n", "\n"))
	}
	return nil
}

// last returns the newest message to an address, or "".
func (m *mailbox) last(to string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msgs := m.mail[to]; len(msgs) > 0 {
		return msgs[len(msgs)-1]
	}
	return ""
}

func (m *mailbox) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, msgs := range m.mail {
		n += len(msgs)
	}
	return n
}

// smsGateway is a real HTTP server taking the gateway's JSON, or answering 503 when failing.
type smsGateway struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	texts   map[string][]string // phone -> texts
}

func startSMSGateway(t *testing.T, token string) *smsGateway {
	t.Helper()
	g := &smsGateway{texts: map[string][]string{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.failing.Load() {
			http.Error(w, "gateway maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		var msg struct{ From, To, Text string }
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.texts[msg.To] = append(g.texts[msg.To], msg.Text)
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *smsGateway) last(phone string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if texts := g.texts[phone]; len(texts) > 0 {
		return texts[len(texts)-1]
	}
	return ""
}

func (g *smsGateway) count(phone string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.texts[phone])
}

// voterDevice seals ballots the way a voter's device does: the inner ballot to the election
// key, the envelope to the cluster's envelope key published in the cluster folder.
type voterDevice struct {
	election *ballot.ElectionPublicKey
	envelope *rsa.PublicKey
}

func newVoterDevice(t *testing.T, clusterDir string, election *ballot.ElectionPublicKey) voterDevice {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(clusterDir, cluster.EnvelopePublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ballot.ParseEnvelopePublicKeyPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return voterDevice{election: election, envelope: pub}
}

// seal returns the envelope for a vote for list in the session, and the inner ballot.
func (d voterDevice) seal(t *testing.T, sessionID string, nonce []byte, list string) (envelope, inner []byte) {
	t.Helper()
	inner, err := ballot.SealBallot(d.election, ballot.Vote{Scrutin: "ct", List: list})
	if err != nil {
		t.Fatal(err)
	}
	envelope, err = ballot.SealEnvelope(d.envelope, sessionID, nonce, inner)
	if err != nil {
		t.Fatal(err)
	}
	return envelope, inner
}

// receiptPublicKey reads the cluster's receipt verification key from the cluster folder.
func receiptPublicKey(t *testing.T, clusterDir string) ed25519.PublicKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(clusterDir, cluster.ReceiptPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ballot.ParseSigningPublicKeyPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// testClock is the leader clock of every node: the wall clock moved forward by an offset.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time                    { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration)           { c.offset.Add(int64(d)) }
func (c *testClock) Options(_ string, o *node.Options) { o.Clock = c.Now }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
