package faultnet

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn applies the rules between local and remote to every read and write, so a rule added
// while the connection is open takes effect on its next byte.
type conn struct {
	net.Conn
	network       *Network
	local, remote string
	deadOut       atomic.Bool // data was dropped local → remote: the outgoing stream has a gap
	deadIn        atomic.Bool // data was dropped remote → local
	closed        chan struct{}
	closeOnce     sync.Once
}

func newConn(c net.Conn, n *Network, local, remote string) *conn {
	return &conn{Conn: c, network: n, local: local, remote: remote, closed: make(chan struct{})}
}

// Write discards p when local → remote is dropped, and otherwise delivers it after the delay.
func (c *conn) Write(p []byte) (int, error) {
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	if c.deadOut.Load() || c.network.Dropped(c.local, c.remote) {
		c.deadOut.Store(true)
		return len(p), nil
	}
	if !c.wait(c.network.delay(c.local, c.remote)) {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// Read throws away what arrives while remote → local is dropped and keeps waiting, so the
// reader sees silence until its deadline; delivered data is held for the delay first.
func (c *conn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 && (c.deadIn.Load() || c.network.Dropped(c.remote, c.local)) {
			c.deadIn.Store(true)
			if err != nil {
				return 0, err
			}
			continue
		}
		if n > 0 && !c.wait(c.network.delay(c.remote, c.local)) {
			return 0, net.ErrClosed
		}
		return n, err
	}
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// wait sleeps for d unless the connection is closed first; it reports whether it may go on.
func (c *conn) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closed:
		return false
	}
}
