package node

import (
	"errors"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// A leader whose process dies (a crash, a SIGKILL, an OOM kill) closes every raft connection
// it had: each follower reads EOF or a reset at once. Raft itself waits for its heartbeat
// timeout, and the followers that still know a leader refuse to vote, so the first write
// after the crash came about three heartbeat timeouts later. On a hang-up from its leader,
// a follower now dials the leader's raft port: "connection refused" proves that the host
// answers and nothing listens, so the process is gone, and the follower stands for election
// at once. A timeout proves nothing (a partition, a slow host) and changes nothing: raft's own
// timeouts still decide then.
//
// The follower stands by sending itself raft's TimeoutNow, the message of a leadership
// transfer: it becomes a candidate without waiting, skips the pre-vote, and the others grant
// their vote although they still know the dead leader. Their vote still requires the
// candidate's log to be at least as up to date as theirs, so raft's safety is untouched;
// only when an election starts changes. The followers stand one after the other, hangupStep
// apart, in an order they all compute alike (a witness last, since it hands leadership back),
// each one only if nobody won meanwhile: if the first one's log is behind, the next stands.
const (
	hangupProbeTimeout = 250 * time.Millisecond
	hangupStep         = 50 * time.Millisecond
)

// leaderHangup runs when node peer hung up a raft connection it had dialed to us.
func (n *Node) leaderHangup(peer string) {
	if n.raft.State() != raft.Follower {
		return
	}
	addr, id := n.raft.LeaderWithID()
	if addr == "" || string(id) != peer {
		return
	}
	term := n.raft.CurrentTerm()
	// One probe at a time per term: a dead leader hangs up several connections at once. A
	// leader found alive is probed again at its next hang-up.
	seen := n.hangupTerm.Load()
	if seen >= term || !n.hangupTerm.CompareAndSwap(seen, term) {
		return
	}
	if !n.refuses(addr) {
		n.hangupTerm.CompareAndSwap(term, seen)
		return
	}
	rank, ok := n.standingRank(id)
	if !ok {
		return
	}
	select {
	case <-time.After(time.Duration(rank) * hangupStep):
	case <-n.ctx.Done():
		return
	}
	if now, _ := n.raft.LeaderWithID(); n.raft.State() != raft.Follower || (now != addr && now != "") {
		return // somebody stood and won, or is standing
	}
	n.log.Warn("leader's process is gone (its raft port refuses connections); standing for election now",
		"leader", peer, "term", term)
	n.metrics.hangupElections.Inc()
	local := n.transport.LocalAddr()
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(n.cfg.NodeID),
		Addr:            n.transport.EncodePeer(raft.ServerID(n.cfg.NodeID), local),
	}}
	if err := n.transport.TimeoutNow(raft.ServerID(n.cfg.NodeID), local, req, &raft.TimeoutNowResponse{}); err != nil {
		n.log.Warn("could not stand for election; raft's timeouts will", "err", err)
	}
}

// refuses reports whether addr refuses connections. A process being killed may still complete
// a connection from its listen queue and then reset it: that asks again, a few milliseconds
// later. A connection made, or none within hangupProbeTimeout, says the process may live.
func (n *Node) refuses(addr raft.ServerAddress) bool {
	deadline := time.Now().Add(hangupProbeTimeout)
	for time.Now().Before(deadline) {
		conn, err := n.raftLayer.Dial(addr, time.Until(deadline))
		switch {
		case err == nil:
			conn.Close()
			return false
		case errors.Is(err, syscall.ECONNREFUSED):
			return true
		case !errors.Is(err, syscall.ECONNRESET):
			return false
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-n.ctx.Done():
			return false
		}
	}
	return false
}

// standingRank is this node's place in the order in which the voters other than the dead
// leader stand; ok is false for a node without a vote.
func (n *Node) standingRank(dead raft.ServerID) (rank int, ok bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0, false
	}
	return standingRank(f.Configuration().Servers, dead, raft.ServerID(n.cfg.NodeID), n.cfg.Role == RoleWitness)
}

// standingRank orders the voters other than dead by node id, a witness after all of them.
// A node knows only its own role, so a datacenter node counts a witness with a smaller id
// before itself (a slot left empty), and a witness takes the slot after the last one any
// datacenter node can take: every follower gets its own slot, so two never stand at once
// unless the first took longer than hangupStep.
func standingRank(servers []raft.Server, dead, self raft.ServerID, witness bool) (rank int, ok bool) {
	for _, s := range servers {
		switch {
		case s.Suffrage != raft.Voter || s.ID == dead:
		case s.ID == self:
			ok = true
		case witness || s.ID < self:
			rank++
		}
	}
	if witness {
		rank++
	}
	return rank, ok
}
