package node

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/transport/urnepb"
)

// leaderState remembers the term in which this node, as leader, has applied everything
// committed before it: only then is its commit index a valid read index.
type leaderState struct {
	readyTerm atomic.Uint64
}

// currentTerm reads raft's term.
func (n *Node) currentTerm() uint64 {
	return n.raft.CurrentTerm()
}

// ReadBarrier returns once the local state machine reflects every write acknowledged before
// the call (linearizable read, as in the raft paper's read index), or at once for stale reads.
func (n *Node) ReadBarrier(ctx context.Context, c urnepb.Consistency) error {
	if c == urnepb.Consistency_CONSISTENCY_STALE {
		return nil
	}
	index, err := n.readIndex(ctx)
	if err != nil {
		return err
	}
	return n.waitApplied(ctx, index)
}

// readIndex asks the leader (maybe this node) for an index covering every acknowledged write.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.leaderReadIndex()
	}
	leaderID, err := n.waitLeader(ctx)
	if err != nil {
		return 0, err
	}
	if leaderID == n.cfg.NodeID {
		return n.leaderReadIndex()
	}
	conn, err := n.peers.get(n.members.grpcAddress(leaderID))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	out, err := urnepb.NewInternalClient(conn).ReadIndex(ctx, &urnepb.ReadIndexRequest{})
	if err != nil {
		return 0, forwardedError(err)
	}
	return out.Index, nil
}

// leaderReadIndex confirms leadership with a quorum and returns the commit index, once this
// term's first entry has been applied (before that the commit index may lag the cluster's).
func (n *Node) leaderReadIndex() (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, ErrNoLeader
	}
	if n.leader.readyTerm.Load() != n.currentTerm() {
		return 0, fmt.Errorf("%w: leader has not applied its first entry yet", ErrNoLeader)
	}
	index := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return index, nil
}

// waitApplied polls until the state machine reflects every entry up to index. Raft never
// hands no-op and barrier entries to the state machine, so its own applied index can stop
// short of a read index that points at one: once raft has dispatched index, the wait is over
// when no entry between the two reaches the state machine.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for !n.appliedThrough(index) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d: %w", index, ctx.Err())
		case <-n.ctx.Done():
			return ErrShutdown
		case <-t.C:
		}
	}
	return nil
}

// lastSnapshotIndex is the index of the newest snapshot raft took or installed.
func (n *Node) lastSnapshotIndex() uint64 {
	return parseUint(n.raft.Stats()["last_snapshot_index"])
}

func (n *Node) appliedThrough(index uint64) bool {
	applied := n.fsm.AppliedIndex()
	if applied >= index {
		return true
	}
	// A state machine more than a few batches behind is still applying: no need to look.
	if n.raft.AppliedIndex() < index || index-applied > 1024 {
		return false
	}
	var l raft.Log
	for i := applied + 1; i <= index; i++ {
		if err := n.stores.log.GetLog(i, &l); err != nil {
			// A snapshot (taken here or installed from the leader) removed the entry from
			// the log, and the state machine reflects every command up to the snapshot's
			// index: the entries it covers need no look.
			if snap := n.lastSnapshotIndex(); i <= snap {
				i = snap
				continue
			}
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}
