package fsm

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// commitDelay is how long applied entries may wait in the open write transaction before it
// commits. The raft log, fsync'd on a quorum before an entry is applied, is the durable record
// of every entry; the state database is its replay, and a node that stops before a commit
// replays the entries after its applied index when it starts again. Committing on a cadence
// instead of after every entry makes one fsync and one rewrite of each page serve every entry
// applied meanwhile: under load, the tree pages that several casts share are written once.
const commitDelay = 500 * time.Millisecond

// writeTx is the write transaction applies share, begun if none is open. The caller holds
// commitMu and f.mu for reading.
func (f *FSM) writeTx() (*bolt.Tx, error) {
	if f.pending != nil {
		return f.pending, nil
	}
	tx, err := f.db.Begin(true)
	if err != nil {
		return nil, err
	}
	f.pending, f.pendingBytes = tx, 0
	f.commitTimer = time.AfterFunc(f.commitDelay, f.commit)
	return tx, nil
}

// takePending hands over the open write transaction, if any, to be committed or rolled back,
// and disarms its timer. The caller holds commitMu.
func (f *FSM) takePending() *bolt.Tx {
	tx := f.pending
	if tx != nil {
		f.pending, f.pendingBytes = nil, 0
		f.commitTimer.Stop()
	}
	return tx
}

// commitLocked commits the open write transaction, if any. A failed commit panics, whatever
// the goroutine: the state machine answered for entries it can no longer keep, and only a
// restart, which replays them from the raft log, puts the database and the applied index back
// in step. The caller holds commitMu.
func (f *FSM) commitLocked() {
	tx := f.takePending()
	if tx == nil {
		return
	}
	err := commitPoint.Inject()
	if err == nil {
		err = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	if err != nil {
		f.logger.Error("committing applied entries failed", "applied_index", f.applied.Load(), "err", err)
		panic(fmt.Sprintf("fsm: cannot commit the entries applied up to %d: %v", f.applied.Load(), err))
	}
}

// commit commits the applied entries waiting in the write transaction: the timer writeTx
// arms calls it, and reads, snapshots, restores and Close call it first, so that they see,
// or keep, everything applied.
func (f *FSM) commit() {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.commitLocked()
}
