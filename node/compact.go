package node

import (
	"time"

	"github.com/urne-vote/urne/fsm"
)

// closeCompactLoop makes the close final on this node's disk: once its state machine has
// applied the close, it snapshots and drops the whole raft log up to that snapshot, so the
// cast commands (session hash, request id and ballot side by side: DESIGN.md invariant 6)
// do not outlive the vote. Every node does it for itself, leader or not; a node that starts
// on a closed election does it at once. A failed attempt is retried on the next turn.
func (n *Node) closeCompactLoop() {
	defer n.wg.Done()
	t := time.NewTicker(deadlineInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if n.voteOver() {
				if err := n.compactLog(); err != nil {
					n.log.Warn("compacting the raft log after the close failed; trying again", "err", err)
					continue
				}
				return
			}
		}
	}
}

// voteOver tells whether this node applied the close. A closed election never reopens, so
// the answer is final; it comes from the phase the state machine keeps in memory.
func (n *Node) voteOver() bool {
	switch n.fsm.Phase() {
	case fsm.PhaseClosed, fsm.PhaseTallied, fsm.PhaseArchived:
		return true
	}
	return false
}

// compactLog snapshots with no trailing log kept, so that raft drops its log, and removes the
// snapshots taken before (they hold the sessions of the vote). A snapshot already at the last
// applied index (ErrNothingNewToSnapshot) was taken after the close.
func (n *Node) compactLog() error {
	removed, err := n.compactRaft()
	if err != nil {
		return err
	}
	first, _ := n.stores.log.FirstIndex()
	last, _ := n.stores.log.LastIndex()
	n.log.Info("compacted the raft log at the close", "first_index", first, "last_index", last, "older_snapshots_removed", len(removed))
	return nil
}
