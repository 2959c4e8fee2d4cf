package node

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/urne-vote/urne/transport/raftlayer"

	"github.com/urne-vote/urne/transport/urnepb"
)

// leaderLoop follows leadership changes. On becoming leader it waits for its first entry to
// apply (reads are then safe), keeps raft's membership in line with gossip, lets autopilot
// promote caught-up servers, and, on a witness, hands leadership to a datacenter node.
// It is one of the node's two long-running loops (with gossip's) and owns no data.
func (n *Node) leaderLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	leading := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-n.leaderNotify:
			leading = isLeader
			n.metrics.leaderChanges.Inc()
			if leading {
				n.becameLeader()
			} else {
				n.pilot.DisableReconciliation()
			}
		case <-n.members.changed:
			if leading {
				n.reconcileMembers()
			}
		case <-tick.C:
			if leading {
				n.reconcileMembers()
				n.handOffIfWitness()
			}
		}
	}
}

// becameLeader runs a barrier so that every entry of earlier terms is applied, then marks
// the term ready for reads and starts reconciliation.
func (n *Node) becameLeader() {
	term := n.currentTerm()
	n.log.Info("became leader", "term", term)
	if err := n.await(n.raft.Barrier(applyTimeout)); err != nil {
		n.log.Warn("leader barrier failed", "err", err)
		return
	}
	n.leader.readyTerm.Store(term)
	n.pilot.EnableReconciliation()
	n.reconcileMembers()
	n.handOffIfWitness()
}

// handOffIfWitness transfers leadership away from a witness: the third site only breaks ties.
func (n *Node) handOffIfWitness() {
	if n.cfg.Role != RoleWitness || n.raft.State() != raft.Leader {
		return
	}
	n.log.Info("witness holds leadership; handing it to a datacenter node")
	if err := n.await(n.raft.LeadershipTransfer()); err != nil {
		n.log.Warn("witness leadership transfer failed; will retry", "err", err)
	}
}

// startAutopilot builds autopilot with reconciliation off until this node leads.
func (n *Node) startAutopilot() {
	n.pilot = autopilot.New(n.raft, &pilotDelegate{n: n},
		autopilot.WithLogger(raftlayer.NewHCLogger(n.log, "autopilot")),
		autopilot.WithPromoter(rolePromoter{StablePromoter: new(autopilot.StablePromoter), holds: &n.holds}),
		autopilot.WithReconcileInterval(time.Second),
		autopilot.WithUpdateInterval(time.Second),
		autopilot.WithReconciliationDisabled())
	n.pilot.Start(n.ctx)
}

// pilotDelegate feeds autopilot with gossip's view and each server's raft progress.
type pilotDelegate struct{ n *Node }

func (d *pilotDelegate) AutopilotConfig() *autopilot.Config {
	_, election, _, _ := d.n.cfg.Profile.raftTimeouts()
	quorum := 0
	for _, p := range d.n.cfg.Bootstrap {
		if p.Role.Voting() {
			quorum++
		}
	}
	return &autopilot.Config{
		CleanupDeadServers:      d.n.cfg.CleanupDeadServers,
		LastContactThreshold:    4 * election,
		MaxTrailingLogs:         1000,
		MinQuorum:               uint(max(quorum, 3)),
		ServerStabilizationTime: 4 * election,
	}
}

func (d *pilotDelegate) NotifyState(s *autopilot.State) { d.n.metrics.observePilot(s) }

func (d *pilotDelegate) KnownServers() map[raft.ServerID]*autopilot.Server {
	_, leaderID := d.n.raft.LeaderWithID()
	out := map[raft.ServerID]*autopilot.Server{}
	for _, m := range d.n.members.all() {
		id := raft.ServerID(m.meta.ID)
		out[id] = &autopilot.Server{
			ID: id, Name: m.meta.ID, Address: raft.ServerAddress(m.meta.Raft),
			NodeStatus: gossipToPilot(m.status), Version: Version, RaftVersion: raft.ProtocolVersionMax,
			Meta:     map[string]string{"role": string(m.meta.Role), "dc": m.meta.Datacenter},
			IsLeader: id == leaderID,
		}
	}
	return out
}

func gossipToPilot(status string) autopilot.NodeStatus {
	switch status {
	case "alive", "suspect":
		return autopilot.NodeAlive
	case "dead":
		return autopilot.NodeFailed
	case "left":
		return autopilot.NodeLeft
	}
	return autopilot.NodeUnknown
}

// FetchServerStats asks every server for its raft progress over the internal service.
func (d *pilotDelegate) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[raft.ServerID]*autopilot.ServerStats{}
	for id := range servers {
		wg.Add(1)
		go func(id raft.ServerID) {
			defer wg.Done()
			if st := d.n.serverStats(ctx, string(id)); st != nil {
				mu.Lock()
				out[id] = st
				mu.Unlock()
			}
		}(id)
	}
	wg.Wait()
	return out
}

func (n *Node) serverStats(ctx context.Context, id string) *autopilot.ServerStats {
	if id == n.cfg.NodeID {
		s := n.localStats()
		return &autopilot.ServerStats{LastIndex: s.LastIndex, LastTerm: s.LastTerm, LastContact: time.Duration(s.LastContactNanos)}
	}
	conn, err := n.peers.get(n.members.grpcAddress(id))
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := urnepb.NewInternalClient(conn).ServerStats(ctx, &urnepb.ServerStatsRequest{})
	if err != nil {
		return nil
	}
	return &autopilot.ServerStats{LastIndex: s.LastIndex, LastTerm: s.LastTerm, LastContact: time.Duration(s.LastContactNanos)}
}

// localStats reads this node's raft progress.
func (n *Node) localStats() *urnepb.ServerStatsResponse {
	st := n.raft.Stats()
	var out urnepb.ServerStatsResponse
	out.LastIndex = n.raft.LastIndex()
	out.LastTerm = parseUint(st["last_log_term"])
	if n.raft.State() == raft.Leader {
		return &out
	}
	if d, err := time.ParseDuration(st["last_contact"]); err == nil {
		out.LastContactNanos = int64(d)
	} else {
		// "never": no contact yet.
		out.LastContactNanos = int64(time.Hour)
	}
	return &out
}

func (d *pilotDelegate) RemoveFailedServer(s *autopilot.Server) {
	go func() {
		d.n.log.Warn("autopilot removes failed server", "id", s.ID)
		if err := d.n.raft.RemoveServer(s.ID, 0, 10*time.Second).Error(); err != nil {
			d.n.log.Warn("remove failed server", "id", s.ID, "err", err)
		}
	}()
}

// rolePromoter promotes a caught-up nonvoter only when its configured role votes: storage
// points (nonvoter role) keep their copy without a vote, and servers held by a drill wait.
type rolePromoter struct {
	*autopilot.StablePromoter
	holds *suffrageHolds
}

const nodeNonvoter autopilot.NodeType = "nonvoter"

func (rolePromoter) GetNodeTypes(_ *autopilot.Config, s *autopilot.State) map[raft.ServerID]autopilot.NodeType {
	types := map[raft.ServerID]autopilot.NodeType{}
	for id, srv := range s.Servers {
		types[id] = autopilot.NodeVoter
		if !Role(srv.Server.Meta["role"]).Voting() {
			types[id] = nodeNonvoter
		}
	}
	return types
}

func (p rolePromoter) CalculatePromotionsAndDemotions(c *autopilot.Config, s *autopilot.State) autopilot.RaftChanges {
	all := p.StablePromoter.CalculatePromotionsAndDemotions(c, s)
	var changes autopilot.RaftChanges
	for _, id := range all.Promotions {
		if srv, ok := s.Servers[id]; ok && Role(srv.Server.Meta["role"]).Voting() && !p.holds.held(string(id)) {
			changes.Promotions = append(changes.Promotions, id)
		}
	}
	return changes
}
