package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/raft"
)

// stableStore seals every value (current term, last vote term and candidate, ...) bound to its
// key. Keys stay in clear: they are raft's fixed names.
type stableStore struct {
	inner  raft.StableStore
	sealer Sealer
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
	return ss.inner.Set(key, ss.sealer.Seal(stableAAD(key), val))
}

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
