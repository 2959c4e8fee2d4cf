package node

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc/credentials"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/pki"
)

// Bounds of the connection log: distinct (action, caller, address, reason) kept between two
// flushes, and register entries written per flush; the rest is summed up in one entry.
const (
	maxConnKeys    = 1024
	maxConnEntries = 20
)

// connLog gathers the client connections this node's gRPC server accepted and the ones it
// refused (failed TLS handshakes, calls refused by the access policy), and writes them to the
// register before each scheduled integrity check: one entry per caller, address and reason
// with its count, so that a flood of connections costs a bounded number of entries. Nodes'
// own connections to each other are not logged. The address goes into the entry's
// connection details, which its retention period erases; the detail never names it.
type connLog struct {
	n      *Node
	record func(ctx context.Context, k connKey, ev *fsmpb.RecordEvent) // write, unless a test replaces it

	mu      sync.Mutex
	pending map[connKey]int
	order   []connKey
	dropped int // events past maxConnKeys
}

type connKey struct {
	action, principal, ip, reason string
}

func newConnLog(n *Node) *connLog {
	l := &connLog{n: n, pending: map[connKey]int{}}
	l.record = l.write
	return l
}

func (l *connLog) note(action, principal string, remote net.Addr, reason string) {
	k := connKey{action: action, principal: principal, ip: hostOf(remote), reason: boundText(reason)}
	if len(k.reason) > 200 {
		k.reason = k.reason[:200]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.pending[k]; !ok {
		if len(l.pending) >= maxConnKeys {
			l.dropped++
			return
		}
		l.order = append(l.order, k)
	}
	l.pending[k]++
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// handshake observes a TLS handshake of the gRPC server.
func (l *connLog) handshake(remote net.Addr, info credentials.AuthInfo, err error) {
	if err != nil {
		l.note("connection refused", "", remote, "TLS handshake failed: "+err.Error())
		return
	}
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok {
		return
	}
	id, err := pki.PeerIdentity(tlsInfo.State)
	switch {
	case err != nil:
		l.note("connection refused", "", remote, "client certificate: "+err.Error())
	case id.Kind != pki.KindNode:
		l.note("connect", id.Kind+":"+id.Name, remote, "")
	}
}

// refused observes a call refused by the access policy (auth.RefusalObserver).
func (l *connLog) refused(remote net.Addr, principal, method string, reason error) {
	l.note("call refused", principal, remote, method+": "+reason.Error())
}

// flush writes what was gathered since the last flush.
func (l *connLog) flush(ctx context.Context) {
	l.mu.Lock()
	pending, order, dropped := l.pending, l.order, l.dropped
	l.pending, l.order, l.dropped = map[connKey]int{}, nil, 0
	l.mu.Unlock()
	sort.SliceStable(order, func(i, j int) bool { return pending[order[i]] > pending[order[j]] })
	object := "gRPC server of node " + l.n.cfg.NodeID
	if len(order) == 0 && dropped == 0 {
		return
	}
	for i, k := range order {
		if i == maxConnEntries {
			rest, callers := 0, map[string]bool{}
			for _, k := range order[i:] {
				rest += pending[k]
				callers[k.ip] = true
			}
			l.record(ctx, connKey{action: "connections"}, &fsmpb.RecordEvent{Action: "connections", Object: object, Outcome: "ok",
				Detail: fmt.Sprintf("%d more connection events from %d addresses, and %d past the log's bound, not detailed", rest, len(callers), dropped)})
			return
		}
		l.record(ctx, k, connEvent(k, pending[k], object))
	}
	if dropped > 0 {
		l.record(ctx, connKey{action: "connections"}, &fsmpb.RecordEvent{Action: "connections", Object: object, Outcome: "ok",
			Detail: fmt.Sprintf("%d connection events past the log's bound, not detailed", dropped)})
	}
}

func connEvent(k connKey, count int, object string) *fsmpb.RecordEvent {
	ev := &fsmpb.RecordEvent{Action: k.action, Object: object, Outcome: "ok", Detail: fmt.Sprintf("%d since the last check", count)}
	if k.action != "connect" {
		ev.Outcome = "refused"
		ev.Detail = fmt.Sprintf("%d since the last check: %s", count, k.reason)
	}
	return ev
}

// write records one event with the caller as its actor, address included.
func (l *connLog) write(ctx context.Context, k connKey, ev *fsmpb.RecordEvent) {
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_RECORD_EVENT, ev)
	if err != nil {
		return
	}
	principal := k.principal
	if principal == "" {
		principal = "unauthenticated"
	}
	cmd.Actor = &fsmpb.Actor{Principal: principal, Ip: k.ip}
	ctx, cancel := context.WithTimeout(ctx, 2*applyTimeout)
	defer cancel()
	if _, _, err := l.n.Propose(ctx, cmd); err != nil {
		l.n.log.Warn("recording connections in the register failed", "action", ev.Action, "err", strings.TrimSpace(err.Error()))
	}
}

// observedCreds is the gRPC server's TLS, with each handshake's outcome told to observe.
type observedCreds struct {
	credentials.TransportCredentials
	observe func(remote net.Addr, info credentials.AuthInfo, err error)
}

func (c observedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	c.observe(conn.RemoteAddr(), info, err)
	return out, info, err
}

func (c observedCreds) Clone() credentials.TransportCredentials {
	return observedCreds{TransportCredentials: c.TransportCredentials.Clone(), observe: c.observe}
}
