package raftlayer

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/transport/faultnet"
	"github.com/urne-vote/urne/transport/pki"
)

// logBuffer collects slog text output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// election is a CA and the PEM it hands out.
type election struct {
	id string
	ca *pki.CA
}

func newElection(t *testing.T, id string) election {
	t.Helper()
	ca, err := pki.NewCA(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return election{id: id, ca: ca}
}

// tlsConfigs returns the server and client configurations of a node of e.
func (e election) tlsConfigs(t *testing.T, nodeID string) (server, client *tls.Config) {
	t.Helper()
	cert, key, err := e.ca.IssueNode(nodeID, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if server, err = pki.ServerConfig(e.ca.CertPEM(), cert, key, e.id); err != nil {
		t.Fatal(err)
	}
	if client, err = pki.ClientConfig(e.ca.CertPEM(), cert, key, e.id, ""); err != nil {
		t.Fatal(err)
	}
	return server, client
}

func (e election) clientConfig(t *testing.T, role string) *tls.Config {
	t.Helper()
	cert, key, err := e.ca.IssueClient(role)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientConfig(e.ca.CertPEM(), cert, key, e.id, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newLayer(t *testing.T, e election, nodeID string, dial Dialer, logger *slog.Logger) *Layer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server, client := e.tlsConfigs(t, nodeID)
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l := New(ln, nil, server, client, dial, logger)
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptOne accepts in the background so a test can dial and then look at what arrived.
func acceptOne(l *Layer) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			ch <- c
		}
		close(ch)
	}()
	return ch
}

func TestLayersExchangeBytes(t *testing.T) {
	e := newElection(t, "e1")
	a, b := newLayer(t, e, "a", nil, nil), newLayer(t, e, "b", nil, nil)
	incoming := acceptOne(b)
	out, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in := <-incoming
	if in == nil {
		t.Fatal("Accept failed")
	}
	defer in.Close()
	if _, err := out.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(in, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if _, ok := out.(*tls.Conn); !ok {
		t.Fatalf("Dial returned %T, want *tls.Conn", out)
	}
}

// TestHangupNamesThePeer: a node closing a connection it dialed is reported once, by its node
// id; our own close of an accepted connection is not a hang-up.
func TestHangupNamesThePeer(t *testing.T) {
	e := newElection(t, "e1")
	a, b, c := newLayer(t, e, "a", nil, nil), newLayer(t, e, "b", nil, nil), newLayer(t, e, "c", nil, nil)
	hangups := make(chan string, 4)
	b.OnHangup(func(node string) { hangups <- node })
	connect := func(from *Layer) (out, in net.Conn) {
		incoming := acceptOne(b)
		out, err := from.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if in = <-incoming; in == nil {
			t.Fatal("Accept failed")
		}
		return out, in
	}

	out, in := connect(a)
	out.Close()
	buf := make([]byte, 1)
	for range 2 { // a second failed read reports nothing more
		if _, err := in.Read(buf); !errors.Is(err, io.EOF) {
			t.Fatalf("read after the peer closed: %v, want EOF", err)
		}
	}
	if got := <-hangups; got != "a" {
		t.Fatalf("hang-up reported for %q, want a", got)
	}

	out, in = connect(a)
	defer out.Close()
	in.Close()
	if _, err := in.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after our own close: %v, want net.ErrClosed", err)
	}
	// A connection from c, closed by c: had a's first connection been reported twice or our
	// own close once, a would come before c.
	out3, in3 := connect(c)
	out3.Close()
	if _, err := in3.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
	if got := <-hangups; got != "c" {
		t.Fatalf("hang-up reported for %q, want c", got)
	}
	select {
	case got := <-hangups:
		t.Fatalf("unexpected extra hang-up for %q", got)
	default:
	}
}

func TestForeignElectionRefusedOnBothSides(t *testing.T) {
	e1, e2 := newElection(t, "e1"), newElection(t, "e2")
	var goodLog, foreignLog logBuffer
	good := newLayer(t, e1, "n1", nil, goodLog.logger())
	foreign := newLayer(t, e2, "x", nil, foreignLog.logger())
	incoming := acceptOne(good)

	_, err := good.Dial(raft.ServerAddress(foreign.Addr().String()), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate of urne://e2/node/x is not signed by the CA of election e1 (issuer Urne election e2 CA)") {
		t.Fatalf("dialing a foreign node: %v", err)
	}
	waitFor(t, "the foreign node to log the refusal", func() bool {
		return strings.Contains(foreignLog.String(), `msg="rejected raft connection"`)
	})
	if _, err := foreign.Dial(raft.ServerAddress(good.Addr().String()), 5*time.Second); err == nil {
		t.Fatal("a foreign node dialed in")
	}

	// A foreign node that trusted anything would still be refused by the good node's check.
	foreignServer, _ := e2.tlsConfigs(t, "x")
	trusting := &tls.Config{Certificates: foreignServer.Certificates, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	conn, err := tls.Dial("tcp", good.Addr().String(), trusting)
	if err == nil {
		defer conn.Close()
	}
	want := `reason="certificate of urne://e2/node/x is not signed by the CA of election e1 (issuer Urne election e2 CA)"`
	waitFor(t, "the good node to log why", func() bool { return strings.Contains(goodLog.String(), want) })
	if !strings.Contains(goodLog.String(), "level=WARN") || !strings.Contains(goodLog.String(), "remote=127.0.0.1:") {
		t.Fatalf("log line lacks level or remote address:\n%s", goodLog.String())
	}
	expectOnlyGoodConnection(t, e1, good, incoming)
}

// expectOnlyGoodConnection dials with a node of e and checks that the first connection raft
// would see is that one, so no refused connection was queued before it.
func expectOnlyGoodConnection(t *testing.T, e election, l *Layer, incoming <-chan net.Conn) {
	t.Helper()
	peer := newLayer(t, e, "peer", nil, nil)
	out, err := peer.Dial(raft.ServerAddress(l.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("g")); err != nil {
		t.Fatal(err)
	}
	in := <-incoming
	if in == nil {
		t.Fatal("Accept failed")
	}
	defer in.Close()
	buf := make([]byte, 1)
	_ = in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(in, buf); err != nil || buf[0] != 'g' {
		t.Fatalf("first accepted connection is not the good one: %q, %v", buf, err)
	}
}

func TestClientCertificateCannotSpeakRaft(t *testing.T) {
	e1 := newElection(t, "e1")
	var log logBuffer
	l := newLayer(t, e1, "n1", nil, log.logger())
	incoming := acceptOne(l)
	conn, err := tls.Dial("tcp", l.Addr().String(), e1.clientConfig(t, pki.RoleOperator))
	if err != nil {
		t.Fatalf("the TLS handshake itself should pass: %v", err)
	}
	defer conn.Close()
	waitFor(t, "the refusal of a client certificate", func() bool {
		return strings.Contains(log.String(), "urne://e1/client/operator may call the API but not speak raft")
	})
	expectOnlyGoodConnection(t, e1, l, incoming)
}

func TestSilentConnectionDoesNotBlockAccept(t *testing.T) {
	e := newElection(t, "e1")
	var log logBuffer
	l := newLayer(t, e, "n1", nil, log.logger())
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	expectOnlyGoodConnection(t, e, l, acceptOne(l))
	if took := time.Since(start); took >= HandshakeTimeout {
		t.Fatalf("good connection waited %v behind a silent one", took)
	}
	start = time.Now()
	l.Close()
	if took := time.Since(start); took >= HandshakeTimeout {
		t.Fatalf("Close waited %v for a silent handshake", took)
	}
	if strings.Contains(log.String(), "rejected raft connection") {
		t.Fatalf("a handshake aborted by Close was logged as a rejection:\n%s", log.String())
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}

func TestDialThroughFaultyNetwork(t *testing.T) {
	e := newElection(t, "e1")
	n := faultnet.New()
	a := newLayer(t, e, "a", n.Dialer("a"), nil)
	b := newLayer(t, e, "b", n.Dialer("b"), nil)
	n.Register("b", b.Addr().String())
	n.Partition("a", "b")
	if _, err := a.Dial(raft.ServerAddress(b.Addr().String()), 100*time.Millisecond); err == nil {
		t.Fatal("dialed across a partition")
	}
	n.Heal()
	incoming := acceptOne(b)
	c, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("dial after Heal: %v", err)
	}
	c.Close()
	if in := <-incoming; in != nil {
		in.Close()
	}
}

func TestHCLogger(t *testing.T) {
	var buf logBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := NewHCLogger(logger, "raft").Named("net").With("peer", "n2")
	h.Warn("heartbeat failed", "attempt", 3)
	h.Debug("hidden")
	out := buf.String()
	if !strings.Contains(out, `level=WARN msg="heartbeat failed" peer=n2 logger=raft.net attempt=3`) {
		t.Fatalf("unexpected output: %q", out)
	}
	if strings.Contains(out, "hidden") || h.IsDebug() || !h.IsInfo() {
		t.Fatalf("debug level leaked: %q", out)
	}
	if strings.Count(out, "logger=") != 1 {
		t.Fatalf("logger attribute repeated: %q", out)
	}
}
