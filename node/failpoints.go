package node

import (
	"io"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/internal/failpoint"
)

// Fault injection points of a node (see internal/failpoint). They are wired in only when the
// binary is built with the failpoints tag: otherwise failpoint.Compiled is a false constant
// and the wrappers below are never built.

// withLogFailpoints wraps the raft log so that appends can fail or crash the node.
func withLogFailpoints(s raft.LogStore, nodeID string) raft.LogStore {
	if !failpoint.Compiled {
		return s
	}
	return &faultyLogStore{LogStore: s,
		before: failpoint.New(nodeID, failpoint.RaftBeforeAppend), after: failpoint.New(nodeID, failpoint.RaftAfterAppend)}
}

type faultyLogStore struct {
	raft.LogStore
	before, after failpoint.Point
}

func (s *faultyLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *faultyLogStore) StoreLogs(logs []*raft.Log) error {
	if err := s.before.Inject(); err != nil {
		return err
	}
	if err := s.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	return s.after.Inject()
}

// withFSMFailpoints wraps the state machine raft applies to, snapshots and restores.
func withFSMFailpoints(f raft.BatchingFSM, nodeID string) raft.BatchingFSM {
	if !failpoint.Compiled {
		return f
	}
	p := func(name string) failpoint.Point { return failpoint.New(nodeID, name) }
	return &faultyFSM{BatchingFSM: f, beforeApply: p(failpoint.FSMBeforeApply), afterApply: p(failpoint.FSMAfterApply),
		persist: p(failpoint.SnapshotPersist), afterPersist: p(failpoint.SnapshotAfterPersist),
		beforeRestore: p(failpoint.SnapshotBeforeRestore), afterRestore: p(failpoint.SnapshotAfterRestore)}
}

type faultyFSM struct {
	raft.BatchingFSM
	beforeApply, afterApply, persist, afterPersist, beforeRestore, afterRestore failpoint.Point
}

// ApplyBatch cannot return an error to raft: an error at these points is a crash, as a
// failed apply is (see fsm.ApplyBatch).
func (f *faultyFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	mustNot(f.beforeApply.Inject())
	out := f.BatchingFSM.ApplyBatch(logs)
	mustNot(f.afterApply.Inject())
	return out
}

func (f *faultyFSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *faultyFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.BatchingFSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return &faultySnapshot{FSMSnapshot: s, before: f.persist, after: f.afterPersist}, nil
}

func (f *faultyFSM) Restore(rc io.ReadCloser) error {
	if err := f.beforeRestore.Inject(); err != nil {
		rc.Close()
		return err
	}
	if err := f.BatchingFSM.Restore(rc); err != nil {
		return err
	}
	return f.afterRestore.Inject()
}

type faultySnapshot struct {
	raft.FSMSnapshot
	before, after failpoint.Point
}

func (s *faultySnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.before.Inject(); err != nil {
		sink.Cancel()
		return err
	}
	if err := s.FSMSnapshot.Persist(sink); err != nil {
		return err
	}
	return s.after.Inject()
}

func mustNot(err error) {
	if err != nil {
		panic(err)
	}
}
