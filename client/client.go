package client

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
)

// Client talks to one Urne cluster. It is safe for concurrent use.
type Client struct {
	cfg        Config
	log        *slog.Logger
	endpoints  []string
	configured map[string]bool

	mu          sync.Mutex
	closed      bool
	conns       map[string]*grpc.ClientConn // created lazily, one per endpoint
	leader      string                      // endpoint that gets leader traffic; "" until discovered
	cursor      int                         // index in endpoints of the next node to try
	spread      int                         // calls sent round the nodes so far (toEach)
	nodeIDs     map[string]string           // endpoint -> node id, learned from Node answers
	discovering *discovery                  // leader discovery in progress, shared by callers
}

// New returns a Client for cfg. It does not connect: connections are made on first use.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, ep := range cfg.Endpoints {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, fmt.Errorf("client config: endpoint %q is not host:port: %w", ep, err)
		}
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:        cfg,
		log:        cfg.Logger,
		endpoints:  append([]string(nil), cfg.Endpoints...),
		configured: make(map[string]bool, len(cfg.Endpoints)),
		conns:      make(map[string]*grpc.ClientConn),
		nodeIDs:    make(map[string]string),
	}
	for _, ep := range c.endpoints {
		c.configured[ep] = true
	}
	return c, nil
}

// Endpoints returns the configured endpoints.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close closes every connection. Calls made afterwards fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var first error
	for ep, cc := range c.conns {
		if err := cc.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing connection to %s: %w", ep, err)
		}
	}
	c.conns = map[string]*grpc.ClientConn{}
	return first
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// conn returns the connection to endpoint, creating it on first use.
func (c *Client) conn(endpoint string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if cc := c.conns[endpoint]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(endpoint, c.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	c.conns[endpoint] = cc
	return cc, nil
}

func (c *Client) dialOptions() []grpc.DialOption {
	// Reconnect quickly: a node restarted by a failover drill is back within seconds, and a
	// call to a node that is down fails at once and moves on to the next endpoint.
	reconnect := backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(c.cfg.TLS)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: c.cfg.DialTimeout}),
	}
}

// NewRequestID returns a random 128-bit request id in hex. Give the same id to every retry of
// one logical write, and a new one to each new write.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
