package fsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"math"
	"math/big"

	bolt "go.etcd.io/bbolt"
)

// Records the integrity check compares the stored state with. The box digest and its slices
// are kept as ballots are cast; the build digest is recorded once per election.
var (
	keyBoxDigest   = []byte("box_digest")
	keyBoxSlices   = []byte("box_slices")
	keySealedBuild = []byte("sealed_build")
)

// boxSlices is how many slices the box digest is also kept in, a ballot falling in the slice
// its fingerprint's first four bits name. The scheduled integrity check walks a few slices at
// a time, so that its cost does not grow with the box.
const boxSlices = 16

// ScheduledCheckBudget is how many ballots, and how many register entries, a scheduled
// integrity check reads at least: the whole box and register up to there, beyond it parts in
// turn, so that a check costs the same at a million ballots (a pass over the box every 8
// checks, over the register every 10) as at 100,000.
const ScheduledCheckBudget = 100_000

func sliceOf(fingerprint []byte) int { return int(fingerprint[0] >> 4) }

// boxSum is a sum of ballot terms modulo 2^256, so that it does not depend on the order of
// casting, which the box must not reveal.
type boxSum struct{ sum big.Int }

// boxModulus is 2^256.
var boxModulus = new(big.Int).Lsh(big.NewInt(1), 256)

// newBoxSum starts from a digest as digest wrote it (nil: the empty box).
func newBoxSum(digest []byte) boxSum {
	var b boxSum
	b.sum.SetBytes(digest)
	return b
}

func (b *boxSum) add(term *big.Int) {
	b.sum.Add(&b.sum, term)
	if b.sum.Cmp(boxModulus) >= 0 { // both terms are below 2^256: one subtraction reduces
		b.sum.Sub(&b.sum, boxModulus)
	}
}

func (b *boxSum) digest() []byte { return b.sum.FillBytes(make([]byte, 32)) }

// boxLabel starts every ballot's term of the box sum.
var boxLabel = []byte("urne-box-v1")

// boxDigests is the box digest and, unless the box was begun by a version that did not keep
// them, its slices. Adding a ballot allocates nothing, so that the integrity check can walk a
// million ballots.
type boxDigests struct {
	total  boxSum
	slices *[boxSlices]boxSum // nil: not kept for this box
	h      hash.Hash
	buf    [sha256.Size]byte
	term   big.Int
}

func newBoxDigests(total, slices []byte) (*boxDigests, error) {
	b := &boxDigests{total: newBoxSum(total), h: sha256.New()}
	switch {
	case len(slices) == boxSlices*32:
		b.slices = new([boxSlices]boxSum)
		for i := range b.slices {
			b.slices[i] = newBoxSum(slices[i*32 : (i+1)*32])
		}
	case len(slices) != 0:
		return nil, fmt.Errorf("%w: the box slices record has %d bytes, want %d", ErrCorrupt, len(slices), boxSlices*32)
	case len(total) == 0: // a new box keeps its slices from its first ballot
		b.slices = new([boxSlices]boxSum)
	}
	return b, nil
}

func (b *boxDigests) add(fingerprint, ballot []byte) {
	b.h.Reset()
	b.h.Write(boxLabel)
	b.h.Write(fingerprint)
	b.h.Write(ballot)
	b.term.SetBytes(b.h.Sum(b.buf[:0]))
	b.total.add(&b.term)
	if b.slices != nil {
		b.slices[sliceOf(fingerprint)].add(&b.term)
	}
}

// sliceRecord is the slices as stored, nil when not kept.
func (b *boxDigests) sliceRecord() []byte {
	if b.slices == nil {
		return nil
	}
	out := make([]byte, 0, boxSlices*32)
	for i := range b.slices {
		out = append(out, b.slices[i].digest()...)
	}
	return out
}

// readBoxDigests reads the running digests as the casts left them.
func readBoxDigests(tx *bolt.Tx, s Sealer) (*boxDigests, error) {
	total, _, err := getOpened(tx, s, bucketMeta, keyBoxDigest)
	if err != nil {
		return nil, err
	}
	slices, _, err := getOpened(tx, s, bucketMeta, keyBoxSlices)
	if err != nil {
		return nil, err
	}
	return newBoxDigests(total, slices)
}

// boxState is the running box digests as the transaction has moved them: read at the first
// ballot, written back once by flush.
type boxState struct {
	sums  *boxDigests
	dirty bool
}

// addToBox adds a ballot that entered the box to the running box digests.
func (s *applyState) addToBox(fingerprint, ballot []byte) error {
	if s.box.sums == nil {
		sums, err := readBoxDigests(s.tx, s.sealer)
		if err != nil {
			return err
		}
		s.box.sums = sums
	}
	s.box.sums.add(fingerprint, ballot)
	s.box.dirty = true
	return nil
}

func (s *applyState) flushBox() error {
	if !s.box.dirty {
		return nil
	}
	if slices := s.box.sums.sliceRecord(); slices != nil {
		if err := putSealed(s.tx, s.sealer, bucketMeta, keyBoxSlices, slices); err != nil {
			return err
		}
	}
	return putSealed(s.tx, s.sealer, bucketMeta, keyBoxDigest, s.box.sums.total.digest())
}

// BoxCheck is what a check of the ballot box walked and found.
type BoxCheck struct {
	Ballots  uint64 // ballots walked
	Stored   []byte // running digest kept as ballots were cast
	Computed []byte // digest recomputed over the box; nil when only some slices were walked
	Index    uint64
	// First and Slices are the slices walked, in turn from First; Next is where the next
	// partial check begins. A check that walked the whole box has Slices == BoxSlices.
	First, Slices, Next int
}

// BoxSlices is how many slices the box digest is kept in.
const BoxSlices = boxSlices

// CheckBox checks in one read transaction that every ballot walked is stored under its own
// fingerprint and that the walk sums to the digests kept while casting. It checks that the
// slices sum to the box digest, then walks whole slices in turn from first until it has
// walked at least budget ballots; budget 0 walks every slice. A box begun by a version that
// kept no slices is walked whole against the box digest. A mismatch wraps ErrCorrupt and
// names the ballot, the slice or the sums.
func (f *FSM) CheckBox(first int, budget uint64) (BoxCheck, error) {
	out := BoxCheck{First: first % boxSlices}
	if budget == 0 {
		out.First, budget = 0, math.MaxUint64
	}
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		if out.Index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		stored, err := readBoxDigests(tx, f.sealer)
		if err != nil {
			return err
		}
		out.Stored = stored.total.digest()
		if stored.slices == nil {
			return f.checkBoxWithoutSlices(tx, &out)
		}
		var sum boxSum
		for i := range stored.slices {
			sum.add(&stored.slices[i].sum)
		}
		if got := sum.digest(); !bytes.Equal(got, out.Stored) {
			return fmt.Errorf("%w: the slices of the box digest sum to %x, the box digest is %x", ErrCorrupt, got, out.Stored)
		}
		var walked boxSum
		for out.Slices < boxSlices && out.Ballots < budget {
			i := (out.First + out.Slices) % boxSlices
			computed, err := f.walkBox(tx, i, &out)
			if err != nil {
				return err
			}
			if got, want := computed.digest(), stored.slices[i].digest(); !bytes.Equal(got, want) {
				return fmt.Errorf("%w: the ballots of slice %d of the box sum to %x, its running digest is %x", ErrCorrupt, i, got, want)
			}
			walked.add(&computed.sum)
			out.Slices++
		}
		if out.Slices == boxSlices {
			out.Computed = walked.digest()
		}
		return nil
	})
	out.Next = (out.First + out.Slices) % boxSlices
	if err != nil {
		return out, fmt.Errorf("fsm: ballot box: %w", err)
	}
	return out, nil
}

// checkBoxWithoutSlices walks every ballot of a box that keeps no slices against its digest.
func (f *FSM) checkBoxWithoutSlices(tx *bolt.Tx, out *BoxCheck) error {
	out.First = 0
	computed, err := f.walkBox(tx, -1, out)
	if err != nil {
		return err
	}
	out.Slices = boxSlices
	out.Computed = computed.digest()
	if !bytes.Equal(out.Stored, out.Computed) {
		return fmt.Errorf("%w: the %d ballots sum to %x, the running digest kept while casting is %x",
			ErrCorrupt, out.Ballots, out.Computed, out.Stored)
	}
	return nil
}

// walkBox opens every ballot of slice (-1: the whole box), checks its fingerprint, and
// returns their sum.
func (f *FSM) walkBox(tx *bolt.Tx, slice int, out *BoxCheck) (boxSum, error) {
	sums := &boxDigests{h: sha256.New()} // the total alone: no slices to keep
	c := tx.Bucket(bucketBox).Cursor()
	k, v := c.First()
	if slice >= 0 {
		k, v = c.Seek([]byte{byte(slice << 4)})
	}
	for ; k != nil && (slice < 0 || sliceOf(k) == slice); k, v = c.Next() {
		ballot, err := f.sealer.Open(location(bucketBox, k), v)
		if err != nil {
			return boxSum{}, storageErr("open ballot %x: %w", k, err)
		}
		if fp := sha256.Sum256(ballot); !bytes.Equal(fp[:], k) {
			return boxSum{}, fmt.Errorf("%w: the ballot stored under fingerprint %x has fingerprint %x", ErrCorrupt, k, fp)
		}
		sums.add(k, ballot)
		out.Ballots++
	}
	return sums.total, nil
}
