package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/urne-vote/urne/internal/failpoint"
	"github.com/urne-vote/urne/transport/auth"
	"github.com/urne-vote/urne/transport/faultnet"
	"github.com/urne-vote/urne/transport/urnepb"
)

// chaosState is the fault injection of a node started with chaos enabled: a faultnet network
// through which its raft connections and its gRPC connections to peers go, named by node id.
// Its gRPC listener is left alone, so clients and operators always reach it: a partition
// between two nodes is asked of both, and each cuts the connections it dials.
type chaosState struct {
	net  *faultnet.Network
	kill func()
}

// newChaosState wires a fault network into opts, unless the embedder gave its own dialer and
// listener (tests), and names every bootstrap peer's addresses.
func newChaosState(cfg Config, opts *Options) *chaosState {
	c := &chaosState{net: faultnet.New(), kill: opts.Kill}
	if c.kill == nil {
		c.kill = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	if opts.Dialer == nil {
		opts.Dialer = c.net.Dialer(cfg.NodeID)
	}
	if opts.WrapListener == nil {
		opts.WrapListener = func(ln net.Listener) net.Listener { return c.net.Listener(cfg.NodeID, ln) }
	}
	for _, p := range cfg.Bootstrap {
		c.name(p.ID, p.Raft, p.GRPC)
	}
	return c
}

func (c *chaosState) name(id string, addrs ...string) {
	for _, a := range addrs {
		if a != "" {
			c.net.Register(id, a)
		}
	}
}

// inject adds one fault; peers are matched by the addresses gossip and the bootstrap list give.
func (c *chaosState) inject(f *urnepb.ChaosFault) error {
	need := func(fields ...string) error {
		for _, v := range fields {
			if v == "" {
				return fmt.Errorf("%w: chaos %s needs from and to", ErrInvalidChaos, f.Kind)
			}
		}
		return nil
	}
	switch f.Kind {
	case "partition":
		if err := need(f.From, f.To); err != nil {
			return err
		}
		c.net.Partition(f.From, f.To)
	case "block":
		if err := need(f.From, f.To); err != nil {
			return err
		}
		c.net.Block(f.From, f.To)
	case "delay":
		if err := need(f.From, f.To); err != nil {
			return err
		}
		if f.DelayNanos <= 0 || f.DelayNanos > int64(time.Minute) {
			return fmt.Errorf("%w: delay %s out of (0, 1m]", ErrInvalidChaos, time.Duration(f.DelayNanos))
		}
		c.net.Delay(f.From, f.To, time.Duration(f.DelayNanos))
	case "isolate":
		if err := need(f.From); err != nil {
			return err
		}
		c.net.Isolate(f.From)
	case "failpoint":
		if err := failpoint.Enable(f.Failpoint, f.Spec); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidChaos, err)
		}
	default:
		return fmt.Errorf("%w: unknown fault %q (want partition, block, delay, isolate or failpoint)", ErrInvalidChaos, f.Kind)
	}
	return nil
}

// state lists the active rules and armed failpoints.
func (c *chaosState) state(nodeID string) *urnepb.ChaosState {
	out := &urnepb.ChaosState{NodeId: nodeID}
	for _, r := range c.net.Rules() {
		kind := r.Kind
		if kind == "drop" {
			kind = "block"
		}
		out.Faults = append(out.Faults, &urnepb.ChaosFault{Kind: kind, From: r.From, To: r.To, DelayNanos: int64(r.Delay)})
	}
	for name, spec := range failpoint.Armed() {
		out.Faults = append(out.Faults, &urnepb.ChaosFault{Kind: "failpoint", Failpoint: name, Spec: spec})
	}
	return out
}

// chaosService serves `urne chaos`; every call is refused unless chaos is enabled.
type chaosService struct {
	urnepb.UnimplementedChaosServer
	n *Node
}

// enabled refuses calls on a node without chaos, and names its peers as gossip knows them.
func (s *chaosService) enabled() (*chaosState, error) {
	c := s.n.chaos
	if c == nil {
		return nil, fmt.Errorf("%w: node %s was not started with \"chaos\": true in its configuration", ErrChaosDisabled, s.n.cfg.NodeID)
	}
	for _, m := range s.n.members.all() {
		c.name(m.meta.ID, m.meta.Raft, m.meta.GRPC)
	}
	return c, nil
}

// record logs every chaos action with who asked for it.
func (s *chaosService) record(ctx context.Context, action string, f *urnepb.ChaosFault) {
	by := "unknown"
	if id, ok := auth.IdentityFrom(ctx); ok {
		by = id.String()
	}
	s.n.log.Warn("chaos action", "action", action, "by", by, "kind", f.GetKind(), "from", f.GetFrom(), "to", f.GetTo(),
		"delay", time.Duration(f.GetDelayNanos()), "failpoint", f.GetFailpoint(), "spec", f.GetSpec())
}

func (s *chaosService) Inject(ctx context.Context, f *urnepb.ChaosFault) (*urnepb.ChaosState, error) {
	c, err := s.enabled()
	if err != nil {
		return nil, toStatus(err)
	}
	if err := c.inject(f); err != nil {
		return nil, toStatus(err)
	}
	s.record(ctx, "inject", f)
	return c.state(s.n.cfg.NodeID), nil
}

func (s *chaosService) Heal(ctx context.Context, _ *urnepb.ChaosHealRequest) (*urnepb.ChaosState, error) {
	c, err := s.enabled()
	if err != nil {
		return nil, toStatus(err)
	}
	c.net.Heal()
	failpoint.DisableAll()
	s.record(ctx, "heal", nil)
	return c.state(s.n.cfg.NodeID), nil
}

func (s *chaosService) List(ctx context.Context, _ *urnepb.ChaosListRequest) (*urnepb.ChaosState, error) {
	c, err := s.enabled()
	if err != nil {
		return nil, toStatus(err)
	}
	return c.state(s.n.cfg.NodeID), nil
}

// Kill answers, then ends the process a moment later so that the answer gets out.
func (s *chaosService) Kill(ctx context.Context, _ *urnepb.ChaosKillRequest) (*urnepb.ChaosKillResponse, error) {
	c, err := s.enabled()
	if err != nil {
		return nil, toStatus(err)
	}
	s.record(ctx, "kill", nil)
	time.AfterFunc(100*time.Millisecond, c.kill)
	return &urnepb.ChaosKillResponse{NodeId: s.n.cfg.NodeID}, nil
}
