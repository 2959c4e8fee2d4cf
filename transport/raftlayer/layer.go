// Package raftlayer owns raft traffic over mutual TLS: the stream layer hashicorp/raft's
// network transport runs on, which lets only nodes of this election reach raft.
package raftlayer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/transport/pki"
)

// HandshakeTimeout bounds a TLS handshake in either direction, so a silent or slow peer
// holds one goroutine for at most this long and never the accept loop.
const HandshakeTimeout = 10 * time.Second

// Errors of the layer, in one place.
var (
	// ErrClosed is returned by Accept and Dial once the layer is closed.
	ErrClosed = fmt.Errorf("raft layer closed: %w", net.ErrClosed)
	// ErrNotNode: the peer holds a valid certificate of this election, but not a node's.
	ErrNotNode = errors.New("peer is not a node")
)

// Dialer opens raw connections; *net.Dialer and fault-injecting dialers satisfy it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Layer is a raft.StreamLayer: it accepts and dials TLS connections whose peer is a node of
// this election, as checked by the pki TLS configurations it is given.
type Layer struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	dial      Dialer
	logger    *slog.Logger

	accepted  chan net.Conn // handshaken node connections waiting for raft's Accept
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{} // connections still in their handshake, closed on Close

	hangup atomic.Pointer[func(node string)]
}

var _ raft.StreamLayer = (*Layer)(nil)

// New starts accepting on ln. advertise is the address other nodes dial (ln.Addr() when nil);
// serverTLS and clientTLS come from pki.ServerConfig and pki.ClientConfig; dial nil means a
// plain net.Dialer.
func New(ln net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config, dial Dialer, logger *slog.Logger) *Layer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	if dial == nil {
		dial = &net.Dialer{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := &Layer{
		ln: ln, advertise: advertise, serverTLS: serverTLS, clientTLS: clientTLS, dial: dial,
		logger:   logger,
		accepted: make(chan net.Conn),
		closed:   make(chan struct{}),
		pending:  make(map[net.Conn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection from a node of this election.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.closed:
		return nil, ErrClosed
	}
}

// Close stops accepting, aborts handshakes in progress and waits for their goroutines.
func (l *Layer) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
		l.mu.Lock()
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

// OnHangup sets what runs, once per connection and in its own goroutine, when a node closes
// or resets a connection it dialed to us: the node id it names is the peer's. A leader's
// process that dies hangs up every connection it had to its followers at once, which is how
// they learn of it long before a heartbeat timeout (see node's hangup.go).
func (l *Layer) OnHangup(f func(node string)) { l.hangup.Store(&f) }

// Addr is the advertised address, which raft records in its configuration.
func (l *Layer) Addr() net.Addr { return l.advertise }

// Dial connects to a node, completing the TLS handshake within timeout.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, ErrClosed
	default:
	}
	if timeout <= 0 || timeout > HandshakeTimeout {
		timeout = HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := l.dial.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft dial %s: %w", address, err)
	}
	conn := tls.Client(raw, l.clientTLS)
	if err := l.handshake(ctx, conn); err != nil {
		raw.Close()
		return nil, fmt.Errorf("raft dial %s: %w", address, err)
	}
	return conn, nil
}

// acceptLoop hands every raw connection to its own handshake goroutine.
func (l *Layer) acceptLoop() {
	defer l.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// A listener error such as too many open files is retried after a short pause.
			l.logger.Warn("raft listener accept failed", "error", err, "retry_in", backoff)
			if !l.pause(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !l.track(raw) {
			raw.Close()
			return
		}
		l.wg.Add(1)
		go l.admit(raw)
	}
}

// admit runs the server handshake and delivers the connection if its peer is a node.
func (l *Layer) admit(raw net.Conn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), HandshakeTimeout)
	defer cancel()
	conn := tls.Server(raw, l.serverTLS)
	err := l.handshake(ctx, conn)
	l.untrack(raw)
	if err != nil {
		raw.Close()
		if !l.isClosed() {
			l.logger.Warn("rejected raft connection", "remote", raw.RemoteAddr().String(), "reason", explain(ctx, err))
		}
		return
	}
	id, _ := pki.PeerIdentity(conn.ConnectionState()) // checked by handshake
	select {
	case l.accepted <- &watchedConn{Conn: conn, layer: l, peer: id.Name}:
	case <-l.closed:
		conn.Close()
	}
}

// watchedConn is an accepted node connection that reports its peer's hang-up: the first read
// that ends in EOF or a reset. A close from our side ends reads with net.ErrClosed instead.
type watchedConn struct {
	*tls.Conn
	layer *Layer
	peer  string
	once  sync.Once
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		if f := c.layer.hangup.Load(); f != nil {
			c.once.Do(func() { go (*f)(c.peer) })
		}
	}
	return n, err
}

// handshake completes TLS and requires the peer to be a node: a client certificate of this
// election is valid for the API but must never speak raft.
func (l *Layer) handshake(ctx context.Context, conn *tls.Conn) error {
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	id, err := pki.PeerIdentity(conn.ConnectionState())
	if err != nil {
		return err
	}
	if id.Kind != pki.KindNode {
		return fmt.Errorf("%w: %s may call the API but not speak raft", ErrNotNode, id)
	}
	return nil
}

// explain says why a handshake failed in an operator's words: a timeout as such, and the bare
// alert a peer sends when it refuses our certificate with its likely cause.
func explain(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("no TLS handshake within %v", HandshakeTimeout)
	}
	msg := err.Error()
	if strings.Contains(msg, "remote error: tls: bad certificate") {
		return msg + " (the peer refused this node's certificate: is it a node of another election?)"
	}
	return msg
}

func (l *Layer) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed() {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *Layer) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
}

func (l *Layer) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

func (l *Layer) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.closed:
		return false
	}
}
