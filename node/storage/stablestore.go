package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// stableStore seals every value (current term, last vote term and candidate, ...) bound to its
// key. Keys stay in clear: they are raft's fixed names.
type stableStore struct {
	inner  raft.StableStore
	sealer Sealer
	// mu makes Reseal's read and rewrite of a key atomic with raft's own writes.
	mu sync.Mutex
}

// NewStableStore wraps inner so that values are stored sealed, uint64 values included (as
// sealed 8-byte big-endian values through inner.Set and inner.Get).
func NewStableStore(inner raft.StableStore, s Sealer) raft.StableStore {
	return &stableStore{inner: inner, sealer: s}
}

func stableAAD(key []byte) []byte {
	return append([]byte("raft-stable/"), key...)
}

func (ss *stableStore) Set(key, val []byte) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.inner.Set(key, ss.sealer.Seal(stableAAD(key), val))
}

// ResealStable seals again, under the sealer's current primary key, every key of a stable
// store made by NewStableStore that holds a value (after a key rotation, so that the old key
// may be destroyed). A raft write of the same key waits meanwhile, so no newer term is lost.
func ResealStable(st raft.StableStore, keys ...[]byte) error {
	ss, ok := st.(*stableStore)
	if !ok {
		return fmt.Errorf("storage: %T is not a sealed stable store", st)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, key := range keys {
		val, err := ss.Get(key)
		if err != nil {
			if isMissing(err) {
				continue
			}
			return err
		}
		if err := ss.inner.Set(key, ss.sealer.Seal(stableAAD(key), val)); err != nil {
			return err
		}
	}
	return nil
}

// isMissing reports raft-boltdb's not-found error, which raft itself compares by message.
func isMissing(err error) bool {
	return err != nil && (err.Error() == "not found" || errors.Is(err, errNotFound))
}

var errNotFound = errors.New("not found")

// Get returns the inner store's error unchanged, so a missing key still reads "not found",
// which raft compares by message.
func (ss *stableStore) Get(key []byte) ([]byte, error) {
	sealed, err := ss.inner.Get(key)
	if err != nil {
		return nil, err
	}
	val, err := ss.sealer.Open(stableAAD(key), sealed)
	if err != nil {
		return nil, fmt.Errorf("raft stable store key %q: %w", key, err)
	}
	if val == nil {
		val = []byte{} // a stored empty value is present, not missing
	}
	return val, nil
}

func (ss *stableStore) SetUint64(key []byte, val uint64) error {
	return ss.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns 0 and the inner store's not-found error for a missing key, as
// raft-boltdb does.
func (ss *stableStore) GetUint64(key []byte) (uint64, error) {
	val, err := ss.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("%w: key %q holds %d bytes, want 8", ErrStableValue, key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}
