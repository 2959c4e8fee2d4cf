package node

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"

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

func (n *Node) voteOver() bool {
	e, _, err := n.fsm.Election()
	if err != nil {
		return false
	}
	return e.Phase == fsm.PhaseClosed || e.Phase == fsm.PhaseTallied || e.Phase == fsm.PhaseArchived
}

// compactLog snapshots with no trailing log kept, then puts the configured trailing count
// back. A snapshot already at the last applied index (ErrNothingNewToSnapshot) means a
// snapshot taken after the close exists; the log is then compacted with the next one.
func (n *Node) compactLog() error {
	before := n.raft.ReloadableConfig()
	noTrail := before
	noTrail.TrailingLogs = 0
	if err := n.raft.ReloadConfig(noTrail); err != nil {
		return err
	}
	defer func() {
		if err := n.raft.ReloadConfig(before); err != nil {
			n.log.Warn("restoring the trailing logs after the close compaction failed", "err", err)
		}
	}()
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return err
	}
	first, _ := n.stores.log.FirstIndex()
	last, _ := n.stores.log.LastIndex()
	n.log.Info("compacted the raft log at the close", "first_index", first, "last_index", last)
	return nil
}
