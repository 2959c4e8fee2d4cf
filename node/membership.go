package node

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// memberMeta is what each node gossips about itself.
type memberMeta struct {
	ID         string `json:"id"`
	Datacenter string `json:"dc"`
	Role       Role   `json:"role"`
	Raft       string `json:"raft"`
	GRPC       string `json:"grpc"`
}

// member is one node as gossip last saw it.
type member struct {
	meta   memberMeta
	status string // alive, suspect, dead, left
}

// memberView keeps gossip's view of the cluster and this node's own metadata. It is
// memberlist's Delegate and EventDelegate. Gossip only informs: it never removes a server.
type memberView struct {
	self     memberMeta
	fallback map[string]memberMeta // from the bootstrap list, for addresses before gossip converges
	changed  chan struct{}

	mu      sync.RWMutex
	members map[string]member
}

func newMemberView(cfg Config) *memberView {
	v := &memberView{
		self: memberMeta{ID: cfg.NodeID, Datacenter: cfg.Datacenter, Role: cfg.Role,
			Raft: advertised(cfg.Bind.Raft, cfg.Advertise.Raft), GRPC: advertised(cfg.Bind.GRPC, cfg.Advertise.GRPC)},
		fallback: map[string]memberMeta{},
		changed:  make(chan struct{}, 1),
		members:  map[string]member{},
	}
	for _, p := range cfg.Bootstrap {
		v.fallback[p.ID] = memberMeta{ID: p.ID, Datacenter: p.Datacenter, Role: p.Role, Raft: p.Raft, GRPC: p.GRPC}
	}
	v.members[cfg.NodeID] = member{meta: v.self, status: "alive"}
	return v
}

// NodeMeta implements memberlist.Delegate.
func (v *memberView) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(v.self)
	if len(b) > limit {
		return nil
	}
	return b
}

func (v *memberView) NotifyMsg([]byte)                           {}
func (v *memberView) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (v *memberView) LocalState(join bool) []byte                { return nil }
func (v *memberView) MergeRemoteState(buf []byte, join bool)     {}

// NotifyJoin implements memberlist.EventDelegate.
func (v *memberView) NotifyJoin(n *memberlist.Node)   { v.update(n, "alive") }
func (v *memberView) NotifyUpdate(n *memberlist.Node) { v.update(n, "alive") }
func (v *memberView) NotifyLeave(n *memberlist.Node) {
	status := "dead"
	if n.State == memberlist.StateLeft {
		status = "left"
	}
	v.update(n, status)
}

func (v *memberView) update(n *memberlist.Node, status string) {
	var meta memberMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.ID != n.Name {
		return
	}
	v.mu.Lock()
	v.members[meta.ID] = member{meta: meta, status: status}
	v.mu.Unlock()
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// get returns what is known of a node, from gossip or else from the bootstrap list.
func (v *memberView) get(id string) (member, bool) {
	v.mu.RLock()
	m, ok := v.members[id]
	v.mu.RUnlock()
	if ok {
		return m, true
	}
	if meta, ok := v.fallback[id]; ok {
		return member{meta: meta, status: "unknown"}, true
	}
	return member{}, false
}

// grpcAddress returns a node's gRPC address or "".
func (v *memberView) grpcAddress(id string) string {
	m, _ := v.get(id)
	return m.meta.GRPC
}

// all returns a copy of every member gossip knows.
func (v *memberView) all() []member {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]member, 0, len(v.members))
	for _, m := range v.members {
		out = append(out, m)
	}
	return out
}

// startGossip joins the election's encrypted, labelled gossip pool.
func (n *Node) startGossip() error {
	n.members = newMemberView(n.cfg)
	c := memberlist.DefaultLANConfig()
	if n.cfg.Profile == ProfileWAN {
		c = memberlist.DefaultWANConfig()
	}
	host, port, err := splitHostPort(n.cfg.Bind.Gossip)
	if err != nil {
		return fmt.Errorf("gossip bind: %w", err)
	}
	c.Name, c.BindAddr, c.BindPort = n.cfg.NodeID, host, port
	if adv := n.cfg.Advertise.Gossip; adv != "" {
		if c.AdvertiseAddr, c.AdvertisePort, err = splitHostPort(adv); err != nil {
			return fmt.Errorf("gossip advertise: %w", err)
		}
	} else {
		c.AdvertiseAddr, c.AdvertisePort = host, port
	}
	c.SecretKey = n.gossipKey
	c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	// The label keeps nodes of other elections out even if they shared a key.
	c.Label = "urne/" + n.cfg.ElectionID
	c.Delegate, c.Events = n.members, n.members
	c.Logger = log.New(slogWriter{n.log.With("component", "gossip")}, "", 0)
	if n.gossip, err = memberlist.Create(c); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	n.wg.Add(1)
	go n.joinLoop()
	return nil
}

// joinLoop joins through the configured seeds, retrying until one answers.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	var seeds []string
	self := advertised(n.cfg.Bind.Gossip, n.cfg.Advertise.Gossip)
	for _, s := range n.cfg.Join {
		if s != self {
			seeds = append(seeds, s)
		}
	}
	for delay := 200 * time.Millisecond; len(seeds) > 0; delay = min(2*delay, 5*time.Second) {
		joined, err := n.gossip.Join(seeds)
		if joined > 0 {
			n.log.Info("joined gossip", "contacted", joined)
			return
		}
		n.log.Debug("gossip join failed; retrying", "err", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// reconcileMembers runs on the leader: every node gossip sees alive that raft does not know
// joins as a nonvoter. Promotion is autopilot's decision, removal the operator's or autopilot's.
func (n *Node) reconcileMembers() {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return
	}
	known := map[raft.ServerID]raft.ServerAddress{}
	for _, s := range future.Configuration().Servers {
		known[s.ID] = s.Address
	}
	for _, m := range n.members.all() {
		id, addr := raft.ServerID(m.meta.ID), raft.ServerAddress(m.meta.Raft)
		if m.status != "alive" || m.meta.Raft == "" {
			continue
		}
		if cur, ok := known[id]; ok && cur == addr {
			continue
		}
		n.log.Info("adding server as nonvoter", "id", id, "address", addr, "role", m.meta.Role)
		if err := n.await(n.raft.AddNonvoter(id, addr, 0, 10*time.Second)); err != nil {
			n.log.Warn("add nonvoter failed", "id", id, "err", err)
		}
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}

// GossipMembers lists the ids of the nodes gossip has seen, this one included.
func (n *Node) GossipMembers() []string {
	var ids []string
	for _, m := range n.members.all() {
		ids = append(ids, m.meta.ID)
	}
	return ids
}
