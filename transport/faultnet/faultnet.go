// Package faultnet owns fault injection for tests: partitions, one-way drops and delays between
// named endpoints, applied to real TCP connections through wrapped listeners and dialers.
//
// Rules act on connections, not packets. A dropped direction is a black hole: writes in it
// succeed and vanish, and bytes that still arrive are read and thrown away, so the receiver
// sees silence until its own deadline, as in a real partition. A connection that lost bytes
// stays a black hole in that direction after Heal, because a stream with a gap in it cannot
// carry a protocol again; the application must redial, as it would after a real outage.
// A close by either end still reaches the other (FIN and RST are not dropped).
//
// New connections need both directions, as TCP does: a dial between endpoints with any drop
// rule between them waits until the rule is lifted or the dial's context ends.
//
// The dialing side enforces every rule, since it knows both names. The accepting side knows only
// its own name and so enforces only Isolate; an endpoint dialing without this package is
// therefore cut off only by isolating the endpoint it dials.
package faultnet

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"
)

// link is one direction between two endpoints.
type link struct{ from, to string }

// Network holds the rules and the address book shared by every wrapped listener and dialer.
type Network struct {
	mu       sync.RWMutex
	names    map[string]string // address → endpoint name
	dropped  map[link]bool
	delays   map[link]time.Duration
	isolated map[string]bool
	changed  chan struct{} // closed and replaced on every rule change, to wake waiting dials
}

// New returns a network without rules.
func New() *Network {
	n := &Network{names: make(map[string]string), changed: make(chan struct{})}
	n.resetLocked()
	return n
}

// Register names the endpoint listening at addr, so dials to addr are matched against rules.
// Listener registers its own address; Register is for addresses reached some other way.
func (n *Network) Register(name, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names[addr] = name
}

// Partition cuts both directions between a and b.
func (n *Network) Partition(a, b string) {
	n.update(func() {
		n.dropped[link{a, b}] = true
		n.dropped[link{b, a}] = true
	})
}

// Block drops data from → to, leaving to → from open.
func (n *Network) Block(from, to string) {
	n.update(func() { n.dropped[link{from, to}] = true })
}

// Delay holds every chunk of data sent from → to for d before it is delivered.
func (n *Network) Delay(from, to string, d time.Duration) {
	n.update(func() { n.delays[link{from, to}] = d })
}

// Isolate cuts name off from every other endpoint, named or not.
func (n *Network) Isolate(name string) {
	n.update(func() { n.isolated[name] = true })
}

// Heal lifts every rule. Connections that already lost data stay dead (see the package doc).
func (n *Network) Heal() {
	n.update(n.resetLocked)
}

func (n *Network) resetLocked() {
	n.dropped = make(map[link]bool)
	n.delays = make(map[link]time.Duration)
	n.isolated = make(map[string]bool)
}

func (n *Network) update(change func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	change()
	close(n.changed)
	n.changed = make(chan struct{})
}

// Rule is one active rule: Kind is "drop" (data From → To dropped), "delay" (held for
// Delay) or "isolate" (From cut off from every other endpoint).
type Rule struct {
	Kind     string
	From, To string
	Delay    time.Duration
}

// Rules lists the active rules, sorted.
func (n *Network) Rules() []Rule {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []Rule
	for l := range n.dropped {
		out = append(out, Rule{Kind: "drop", From: l.from, To: l.to})
	}
	for l, d := range n.delays {
		out = append(out, Rule{Kind: "delay", From: l.from, To: l.to, Delay: d})
	}
	for name := range n.isolated {
		out = append(out, Rule{Kind: "isolate", From: name})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	return out
}

// Dropped reports whether data from → to is currently dropped.
func (n *Network) Dropped(from, to string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.droppedLocked(from, to)
}

func (n *Network) droppedLocked(from, to string) bool {
	if from == to {
		return false
	}
	return n.isolated[from] || n.isolated[to] || n.dropped[link{from, to}]
}

func (n *Network) delay(from, to string) time.Duration {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.delays[link{from, to}]
}

// nameOf is the endpoint registered at addr, or addr itself so rules can name unregistered peers.
func (n *Network) nameOf(addr string) string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if name, ok := n.names[addr]; ok {
		return name
	}
	return addr
}

// waitConnectable blocks while either direction between a and b is dropped.
func (n *Network) waitConnectable(ctx context.Context, a, b string) error {
	for {
		n.mu.RLock()
		cut := n.droppedLocked(a, b) || n.droppedLocked(b, a)
		changed := n.changed
		n.mu.RUnlock()
		if !cut {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faultnet: %s cannot reach %s: %w", a, b, ctx.Err())
		case <-changed:
		}
	}
}

// Listener wraps ln as endpoint name and registers its address.
func (n *Network) Listener(name string, ln net.Listener) net.Listener {
	n.Register(name, ln.Addr().String())
	return &listener{Listener: ln, network: n, name: name}
}

type listener struct {
	net.Listener
	network *Network
	name    string
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// The dialer's name is unknown here: an empty remote is matched only by Isolate.
	return newConn(c, l.network, l.name, ""), nil
}

// Dialer dials as one endpoint. Its DialContext matches net.Dialer's, for raft layers and gRPC.
type Dialer struct {
	network *Network
	from    string
	base    net.Dialer
}

// Dialer returns a dialer whose connections are subject to the rules of endpoint from.
func (n *Network) Dialer(from string) *Dialer {
	return &Dialer{network: n, from: from}
}

// DialContext waits until from and the endpoint at addr may connect, adds the round-trip delay,
// and dials.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	to := d.network.nameOf(addr)
	if err := d.network.waitConnectable(ctx, d.from, to); err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, d.network.delay(d.from, to)+d.network.delay(to, d.from)); err != nil {
		return nil, fmt.Errorf("faultnet: dial %s: %w", to, err)
	}
	c, err := d.base.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return newConn(c, d.network, d.from, to), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
