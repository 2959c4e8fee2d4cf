package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// castBox opens an election of n voters, of whom the first n-abstain cast a ballot; it returns
// each slice's ballots by fingerprint.
func castBox(h *harness, n, abstain int) [boxSlices][][32]byte {
	h.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("v%03d", i)
	}
	h.openElection(ids...)
	var slices [boxSlices][][32]byte
	for i, id := range ids[:n-abstain] {
		ballot := "ballot of " + id
		h.mustApply(typeCast, cast(fmt.Sprintf("r%d", i), id, ballot))
		fp := sha256.Sum256([]byte(ballot))
		slices[sliceOf(fp[:])] = append(slices[sliceOf(fp[:])], fp)
	}
	return slices
}

// TestScheduledBoxChecksWalkTheSlicesInTurn: each partial check walks whole slices from where
// the last one stopped, at least the budget, and a round of them walks every ballot once.
func TestScheduledBoxChecksWalkTheSlicesInTurn(t *testing.T) {
	h := newHarness(t)
	slices := castBox(h, 160, 0)
	const budget = 25
	var walked [boxSlices]int
	next := 3
	for round := 0; round < boxSlices; {
		c, err := h.f.CheckBox(next, budget)
		if err != nil {
			t.Fatal(err)
		}
		var want uint64
		for i := range c.Slices {
			s := (c.First + i) % boxSlices
			walked[s]++
			want += uint64(len(slices[s]))
		}
		if c.First != next || c.Ballots != want || c.Next != (c.First+c.Slices)%boxSlices {
			t.Fatalf("check from slice %d: %+v, want %d ballots", next, c, want)
		}
		if c.Ballots < budget || c.Ballots-uint64(len(slices[(c.Next+boxSlices-1)%boxSlices])) >= budget {
			t.Fatalf("check from slice %d walked %d ballots in %d slices for a budget of %d", next, c.Ballots, c.Slices, budget)
		}
		if c.Slices == boxSlices || c.Computed != nil {
			t.Fatalf("a partial check walked the whole box: %+v", c)
		}
		round += c.Slices
		next = c.Next
	}
	for s, n := range walked {
		if n == 0 {
			t.Fatalf("a round of checks skipped slice %d: %v", s, walked)
		}
	}
	whole, err := h.f.CheckBox(next, 0)
	if err != nil || whole.Ballots != 160 || whole.Slices != boxSlices || string(whole.Computed) != string(whole.Stored) {
		t.Fatalf("whole box: %+v %v", whole, err)
	}
}

// TestBoxCheckFindsAnEditedBallotInItsSlice: a partial check that does not walk the edited
// ballot's slice passes; the one that does, and the whole check, name the ballot.
func TestBoxCheckFindsAnEditedBallotInItsSlice(t *testing.T) {
	h := newHarness(t)
	slices := castBox(h, 64, 0)
	if len(slices[7]) == 0 {
		t.Fatal("no ballot in slice 7")
	}
	fp := slices[7][0]
	s := h.f.sealer
	h.tamper(s, func(tx *bolt.Tx) error { return putSealed(tx, s, bucketBox, fp[:], []byte("a ballot stuffed by hand")) })
	if c, err := h.f.CheckBox(8, 1); err != nil || c.First != 8 {
		t.Fatalf("slice 8 holds no edited ballot: %+v %v", c, err)
	}
	for _, first := range []int{7, 0} {
		budget := uint64(1)
		if first == 0 {
			budget = 0
		}
		if _, err := h.f.CheckBox(first, budget); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), hex.EncodeToString(fp[:])) {
			t.Fatalf("check from slice %d, budget %d: %v", first, budget, err)
		}
	}
}

// TestBoxCheckFindsEditedDigests: the slice records must each match their ballots and sum to
// the box digest, so that a partial check answers for the box.
func TestBoxCheckFindsEditedDigests(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(total, slices []byte) ([]byte, []byte)
		want string
	}{
		{"box digest", func(total, slices []byte) ([]byte, []byte) {
			total[31] ^= 1
			return total, slices
		}, "the slices of the box digest sum to"},
		{"two slices moved the same amount", func(total, slices []byte) ([]byte, []byte) {
			slices[31]++ // slice 0 up by one, slice 1 down by one: the sum holds
			for i := 63; i >= 32; i-- {
				slices[i]--
				if slices[i] != 0xff {
					break
				}
			}
			return total, slices
		}, "the ballots of slice 0 of the box sum to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			castBox(h, 64, 0)
			s := h.f.sealer
			h.tamper(s, func(tx *bolt.Tx) error {
				total, _, err := getOpened(tx, s, bucketMeta, keyBoxDigest)
				if err != nil {
					return err
				}
				slices, _, err := getOpened(tx, s, bucketMeta, keyBoxSlices)
				if err != nil {
					return err
				}
				total, slices = tc.edit(total, slices)
				if err := putSealed(tx, s, bucketMeta, keyBoxDigest, total); err != nil {
					return err
				}
				return putSealed(tx, s, bucketMeta, keyBoxSlices, slices)
			})
			for _, budget := range []uint64{1, 0} {
				if _, err := h.f.CheckBox(0, budget); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("budget %d: %v", budget, err)
				}
			}
			if _, err := h.f.CheckBox(0, 1); !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("partial check: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestBoxWithoutSlicesIsWalkedWhole: a box begun before the slices were kept (a snapshot of
// that version) goes on without them, and every check of it walks the whole box.
func TestBoxWithoutSlicesIsWalkedWhole(t *testing.T) {
	h := newHarness(t)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(readGolden(t, "testdata/snapshot_v2_register.hex", nil)))); err != nil {
		t.Fatal(err)
	}
	h.last = h.f.AppliedIndex()
	h.mustApply(typeCast, cast("r2", "bob", "ballot-B"))
	c, err := h.f.CheckBox(5, 1)
	if err != nil || c.Ballots != 2 || c.Slices != boxSlices || c.First != 0 || !bytes.Equal(c.Computed, c.Stored) {
		t.Fatalf("%+v %v", c, err)
	}
	if err := h.f.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyBoxSlices) != nil {
			return errors.New("slices kept for a box that began without them")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
