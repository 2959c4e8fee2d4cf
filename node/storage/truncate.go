package storage

import (
	"sync"

	"github.com/hashicorp/raft"
)

// NewTruncationSafeLogStore wraps inner so that a suffix truncation and the append that
// follows it take effect together or not at all.
//
// On a log conflict a raft follower deletes its log's suffix, then appends the leader's
// entries. If the append fails (a full disk, a failed fsync), raft keeps its in-memory last
// index of before the deletion (a known gap in hashicorp/raft), and the follower looks up
// entries that are gone at every later append: it never accepts another entry until it is
// restarted. Here the suffix deletion is held back and done right after the next append
// succeeds; if the append fails, the log is as raft still believes it to be. Until then the
// held-back entries read as absent. Prefix deletions (compaction) are done at once.
func NewTruncationSafeLogStore(inner raft.LogStore) raft.LogStore {
	return &truncationSafeLogStore{LogStore: inner}
}

type truncationSafeLogStore struct {
	raft.LogStore
	mu      sync.Mutex
	pending *span // a suffix deletion waiting for the next append
}

type span struct{ min, max uint64 }

func (s *truncationSafeLogStore) DeleteRange(min, max uint64) error {
	first, err := s.LogStore.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LogStore.LastIndex()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if min > first && max >= last {
		s.pending = &span{min, max}
		return nil
	}
	if err := s.flushLocked(); err != nil {
		return err
	}
	return s.LogStore.DeleteRange(min, max)
}

// flushLocked applies a held-back deletion on its own (before a compaction).
func (s *truncationSafeLogStore) flushLocked() error {
	p := s.pending
	s.pending = nil
	if p == nil {
		return nil
	}
	return s.LogStore.DeleteRange(p.min, p.max)
}

func (s *truncationSafeLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends, then deletes what of a held-back suffix the new entries did not overwrite.
// A failed append drops the held-back deletion: raft did not take it into account either.
// Without a held-back deletion (the common case) no lock is held while the disk writes, so
// readers of the log are not kept waiting for an fsync.
func (s *truncationSafeLogStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	p := s.pending
	if p == nil {
		s.mu.Unlock()
		return s.LogStore.StoreLogs(logs)
	}
	defer s.mu.Unlock()
	s.pending = nil
	if err := s.LogStore.StoreLogs(logs); err != nil || len(logs) == 0 {
		return err
	}
	from, to := logs[0].Index, logs[len(logs)-1].Index
	if from > p.min {
		if err := s.LogStore.DeleteRange(p.min, min(from-1, p.max)); err != nil {
			return err
		}
	}
	if to < p.max {
		return s.LogStore.DeleteRange(max(to+1, p.min), p.max)
	}
	return nil
}

func (s *truncationSafeLogStore) GetLog(index uint64, l *raft.Log) error {
	s.mu.Lock()
	p := s.pending
	s.mu.Unlock()
	if p != nil && index >= p.min && index <= p.max {
		return raft.ErrLogNotFound
	}
	return s.LogStore.GetLog(index, l)
}

func (s *truncationSafeLogStore) LastIndex() (uint64, error) {
	last, err := s.LogStore.LastIndex()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.pending != nil && s.pending.min <= last {
		last = s.pending.min - 1
	}
	return last, err
}
