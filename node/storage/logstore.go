package storage

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/raft"
)

// logStore seals each entry's Data and Extensions, bound to the entry's index, before it
// reaches the inner store. Index, term, type and append time stay in clear: raft needs them
// to navigate the log and they reveal nothing of the election.
type logStore struct {
	inner  raft.LogStore
	sealer Sealer
}

// monotonicLogStore is a logStore over an inner store that implements
// raft.MonotonicLogStore; raft type-asserts for that interface, so the wrapper must answer
// exactly as the inner store does.
type monotonicLogStore struct {
	*logStore
	mono raft.MonotonicLogStore
}

func (m *monotonicLogStore) IsMonotonic() bool { return m.mono.IsMonotonic() }

// NewLogStore wraps inner so that entry payloads are stored sealed. The returned store
// implements raft.MonotonicLogStore exactly when inner does.
func NewLogStore(inner raft.LogStore, s Sealer) raft.LogStore {
	ls := &logStore{inner: inner, sealer: s}
	if mono, ok := inner.(raft.MonotonicLogStore); ok {
		return &monotonicLogStore{logStore: ls, mono: mono}
	}
	return ls
}

func logDataAAD(index uint64) []byte {
	return strconv.AppendUint([]byte("raft-log/"), index, 10)
}

func logExtensionsAAD(index uint64) []byte {
	return strconv.AppendUint([]byte("raft-log-ext/"), index, 10)
}

func (ls *logStore) FirstIndex() (uint64, error) { return ls.inner.FirstIndex() }
func (ls *logStore) LastIndex() (uint64, error)  { return ls.inner.LastIndex() }

func (ls *logStore) DeleteRange(lo, hi uint64) error { return ls.inner.DeleteRange(lo, hi) }

// GetLog returns inner errors unchanged (raft compares against raft.ErrLogNotFound).
func (ls *logStore) GetLog(index uint64, log *raft.Log) error {
	if err := ls.inner.GetLog(index, log); err != nil {
		return err
	}
	data, err := ls.sealer.Open(logDataAAD(index), log.Data)
	if err != nil {
		return fmt.Errorf("raft log entry %d: %w", index, err)
	}
	log.Data = data
	if len(log.Extensions) > 0 {
		if log.Extensions, err = ls.sealer.Open(logExtensionsAAD(index), log.Extensions); err != nil {
			return fmt.Errorf("raft log entry %d extensions: %w", index, err)
		}
	}
	return nil
}

// StoreLog seals a copy: raft keeps the caller's *raft.Log in its caches and must keep
// seeing the plaintext.
func (ls *logStore) StoreLog(log *raft.Log) error {
	sealed := ls.seal(log)
	return ls.inner.StoreLog(&sealed)
}

func (ls *logStore) StoreLogs(logs []*raft.Log) error {
	sealed := make([]raft.Log, len(logs))
	ptrs := make([]*raft.Log, len(logs))
	for i, log := range logs {
		sealed[i] = ls.seal(log)
		ptrs[i] = &sealed[i]
	}
	return ls.inner.StoreLogs(ptrs)
}

// seal always seals Data, even empty, so that a stored entry cannot be emptied unnoticed;
// Extensions are sealed when present.
func (ls *logStore) seal(log *raft.Log) raft.Log {
	sealed := *log
	sealed.Data = ls.sealer.Seal(logDataAAD(log.Index), log.Data)
	if len(log.Extensions) > 0 {
		sealed.Extensions = ls.sealer.Seal(logExtensionsAAD(log.Index), log.Extensions)
	}
	return sealed
}
