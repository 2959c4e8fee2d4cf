package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Counts is the size of the election state, read in one transaction.
type Counts struct {
	Voters, Emargements, Ballots uint64
	Phase                        int32
	Index                        uint64
	OutboxPending                uint64
}

// view runs fn in a read transaction of the current database, once what was applied is
// committed. Reads are local: the caller decides whether they must be linearizable (barrier,
// leader lease) before calling.
func (f *FSM) view(fn func(tx *bolt.Tx) error) error {
	f.commit()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrClosed
	}
	return f.db.View(fn)
}

// Election returns the election and the applied index it reflects; ErrNoElection if none.
func (f *FSM) Election() (*fsmpb.ElectionResult, uint64, error) {
	var e *fsmpb.ElectionState
	var index uint64
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		if index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		e, err = readElection(tx, f.sealer)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("fsm: read election: %w", err)
	}
	if e == nil {
		return nil, index, fmt.Errorf("fsm: %w", ErrNoElection)
	}
	return electionResult(e), index, nil
}

// Counts returns the counters kept in meta, in O(1).
func (f *FSM) Counts() (Counts, error) {
	var c Counts
	err := f.view(func(tx *bolt.Tx) error {
		index, err := readAppliedIndex(tx, f.sealer)
		if err != nil {
			return err
		}
		counters, err := readCounters(tx, f.sealer)
		if err != nil {
			return err
		}
		e, err := readElection(tx, f.sealer)
		c = Counts{Voters: counters.Voters, Emargements: counters.Emargements, Ballots: counters.Ballots,
			Phase: e.GetPhase(), Index: index, OutboxPending: counters.OutboxPending}
		return err
	})
	if err != nil {
		return Counts{}, fmt.Errorf("fsm: read counts: %w", err)
	}
	return c, nil
}

// HasVoted tells whether the voter of a test election has an émargement, and when it was
// made; a legal election answers ErrNotAllowed (see ForEachEmargement).
func (f *FSM) HasVoted(voterID string) (bool, int64, error) {
	if err := checkID("voter id", voterID); err != nil {
		return false, 0, err
	}
	var em *fsmpb.EmargementRecord
	err := f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e == nil {
			return err
		}
		if rulesOf(e).legal {
			return fmt.Errorf("%w: a %s election keeps one émargement per scrutin; the bureau exports the list", ErrNotAllowed, profileName(e))
		}
		rec := &fsmpb.EmargementRecord{}
		found, err := getMessage(tx, f.sealer, bucketEmargement, voterKey(e.IndexKey, voterID), rec)
		if found {
			em = rec
		}
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("fsm: read émargement: %w", err)
	}
	if em == nil {
		return false, 0, nil
	}
	return true, em.EmargedAtUnixNano, nil
}

// ForEachFingerprint calls fn with each ballot fingerprint, in box (fingerprint) order,
// inside one read transaction: a slow fn delays a concurrent Restore. fn may keep fp.
func (f *FSM) ForEachFingerprint(fn func(fp []byte) error) error {
	return f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBox).ForEach(func(k, _ []byte) error {
			return fn(append([]byte(nil), k...))
		})
	})
}

// Digest hashes the logical (decrypted) state in key order and the applied index, in one
// read transaction: replicas at the same index have the same digest whatever their keys.
func (f *FSM) Digest() (uint64, []byte, error) {
	h := sha256.New()
	var index uint64
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		if index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		return walkPlain(tx, f.sealer, func(bucket, key, plain []byte) error {
			for _, field := range [][]byte{bucket, key, plain} {
				h.Write(binary.AppendUvarint(nil, uint64(len(field))))
				h.Write(field)
			}
			return nil
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("fsm: digest: %w", err)
	}
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	return index, h.Sum(nil), nil
}

// walkPlain calls fn with every record of every bucket, in key order, value opened. Keys
// out of order mean a corrupt page.
func walkPlain(tx *bolt.Tx, s Sealer, fn func(bucket, key, plain []byte) error) error {
	for _, name := range allBuckets {
		b := tx.Bucket(name)
		if b == nil {
			continue // an older database, checked read-only before its first read-write open
		}
		var prev []byte
		err := b.ForEach(func(k, v []byte) error {
			if prev != nil && bytes.Compare(k, prev) <= 0 {
				return fmt.Errorf("%w: keys out of order in bucket %s", ErrCorrupt, name)
			}
			prev = k
			plain, err := s.Open(location(name, k), v)
			if err != nil {
				return storageErr("open a sealed value of bucket %s: %w", name, err)
			}
			return fn(name, k, plain)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
