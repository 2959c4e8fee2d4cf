package fsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"math/big"

	bolt "go.etcd.io/bbolt"
)

// Records the integrity check compares the stored state with. The box digest is kept as
// ballots are cast; the build digest is recorded once per election.
var (
	keyBoxDigest   = []byte("box_digest")
	keySealedBuild = []byte("sealed_build")
)

// boxSum is the box digest: a sum of ballot hashes modulo 2^256, so that it does not depend on
// the order of casting, which the box must not reveal. Adding a ballot allocates nothing, so
// that the integrity check can walk a million ballots every minute.
type boxSum struct {
	sum, term big.Int
	h         hash.Hash
	buf       [sha256.Size]byte
}

// boxLabel starts every ballot's term of the box sum.
var boxLabel = []byte("urne-box-v1")

// boxModulus is 2^256.
var boxModulus = new(big.Int).Lsh(big.NewInt(1), 256)

// newBoxSum starts from a digest as digest wrote it (nil: the empty box).
func newBoxSum(digest []byte) *boxSum {
	b := &boxSum{h: sha256.New()}
	b.sum.SetBytes(digest)
	return b
}

func (b *boxSum) add(fingerprint, ballot []byte) {
	b.h.Reset()
	b.h.Write(boxLabel)
	b.h.Write(fingerprint)
	b.h.Write(ballot)
	b.term.SetBytes(b.h.Sum(b.buf[:0]))
	b.sum.Add(&b.sum, &b.term)
	if b.sum.Cmp(boxModulus) >= 0 { // both terms are below 2^256: one subtraction reduces
		b.sum.Sub(&b.sum, boxModulus)
	}
}

func (b *boxSum) digest() []byte { return b.sum.FillBytes(make([]byte, 32)) }

// boxState is the running box digest as the transaction has moved it: read at the first
// ballot, written back once by flush.
type boxState struct {
	sum   *boxSum
	dirty bool
}

// addToBox adds a ballot that entered the box to the running box digest.
func (s *applyState) addToBox(fingerprint, ballot []byte) error {
	if s.box.sum == nil {
		plain, _, err := getOpened(s.tx, s.sealer, bucketMeta, keyBoxDigest)
		if err != nil {
			return err
		}
		s.box.sum = newBoxSum(plain)
	}
	s.box.sum.add(fingerprint, ballot)
	s.box.dirty = true
	return nil
}

func (s *applyState) flushBox() error {
	if !s.box.dirty {
		return nil
	}
	return putSealed(s.tx, s.sealer, bucketMeta, keyBoxDigest, s.box.sum.digest())
}

// BoxCheck is the ballot box recomputed against its running digest.
type BoxCheck struct {
	Ballots  uint64
	Stored   []byte // running digest kept as ballots were cast
	Computed []byte // digest recomputed over the box
	Index    uint64
}

// CheckBox recomputes the box digest in one read transaction and checks that every ballot is
// stored under its own fingerprint. A mismatch wraps ErrCorrupt and names the ballot or the sums.
func (f *FSM) CheckBox() (BoxCheck, error) {
	var out BoxCheck
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		if out.Index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		stored, _, err := getOpened(tx, f.sealer, bucketMeta, keyBoxDigest)
		if err != nil {
			return err
		}
		out.Stored = newBoxSum(stored).digest()
		sum := newBoxSum(nil)
		err = tx.Bucket(bucketBox).ForEach(func(k, v []byte) error {
			ballot, err := f.sealer.Open(location(bucketBox, k), v)
			if err != nil {
				return storageErr("open ballot %x: %w", k, err)
			}
			if fp := sha256.Sum256(ballot); !bytes.Equal(fp[:], k) {
				return fmt.Errorf("%w: the ballot stored under fingerprint %x has fingerprint %x", ErrCorrupt, k, fp)
			}
			sum.add(k, ballot)
			out.Ballots++
			return nil
		})
		out.Computed = sum.digest()
		return err
	})
	if err != nil {
		return out, fmt.Errorf("fsm: ballot box: %w", err)
	}
	if !bytes.Equal(out.Stored, out.Computed) {
		return out, fmt.Errorf("fsm: ballot box: %w: the %d ballots sum to %x, the running digest kept while casting is %x",
			ErrCorrupt, out.Ballots, out.Computed, out.Stored)
	}
	return out, nil
}
