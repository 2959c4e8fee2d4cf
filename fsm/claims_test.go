package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// claimOf is the claim a receiving node makes for v.
func claimOf(v *fsmpb.VoterRecord) *fsmpb.HomonymClaim {
	return &fsmpb.HomonymClaim{Key: NewRollIndex(fixedIndexKey).HomonymKey(v), VoterId: v.VoterId}
}

// inKeyOrder is the roll as a receiving node proposes it: its homonym keys claimed in their
// order, then its voters in the order of theirs, MaxVotersPerCommand per command.
func inKeyOrder(roll []*fsmpb.VoterRecord) []*fsmpb.ImportVoters {
	index := NewRollIndex(fixedIndexKey)
	byKey := func(key func(*fsmpb.VoterRecord) []byte) []*fsmpb.VoterRecord {
		sorted := slices.Clone(roll)
		slices.SortFunc(sorted, func(a, b *fsmpb.VoterRecord) int { return bytes.Compare(key(a), key(b)) })
		return sorted
	}
	var out []*fsmpb.ImportVoters
	for c := range slices.Chunk(byKey(index.HomonymKey), MaxVotersPerCommand) {
		claims := make([]*fsmpb.HomonymClaim, len(c))
		for i, v := range c {
			claims[i] = claimOf(v)
		}
		out = append(out, &fsmpb.ImportVoters{Claims: claims})
	}
	for c := range slices.Chunk(byKey(func(v *fsmpb.VoterRecord) []byte { return index.VoterKey(v.VoterId) }), MaxVotersPerCommand) {
		out = append(out, &fsmpb.ImportVoters{Voters: c})
	}
	return out
}

// homonymEntry returns the sealed bytes the homonyms bucket holds for v's key, and the voter
// key they open to.
func (h *harness) homonymEntry(v *fsmpb.VoterRecord) (sealed, owner []byte) {
	h.t.Helper()
	hk := NewRollIndex(fixedIndexKey).HomonymKey(v)
	err := h.f.view(func(tx *bolt.Tx) error {
		sealed = bytes.Clone(tx.Bucket(bucketHomonyms).Get(hk))
		plain, _, err := getOpened(tx, h.f.sealer, bucketHomonyms, hk)
		owner = plain
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return sealed, owner
}

func draftCivilService(t *testing.T) *harness {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	return h
}

// A claim points the key to its voter, and the voter's import then finds it there and does
// not write it again: sealing is randomized, so a rewrite would change the stored bytes.
func TestClaimedKeysAreNotWrittenAgain(t *testing.T) {
	h := draftCivilService(t)
	a, b := legalVoter("a", "A"), legalVoter("b", "A")
	if got := h.mustApply(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(a), claimOf(b)}}).GetImport(); got.Claimed != 2 {
		t.Fatalf("claims: %v, want 2 claimed", got)
	}
	if n := h.bucketLen(bucketVoters); n != 0 {
		t.Fatalf("claims put %d voters on the roll", n)
	}
	sealedA, owner := h.homonymEntry(a)
	if !bytes.Equal(owner, voterKey(fixedIndexKey, "a")) {
		t.Fatalf("claimed key points to %x, want voter a", owner)
	}
	res := h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{a, b}}).GetImport()
	if res.Imported != 2 || res.TotalVoters != 2 {
		t.Fatalf("import after the claims: %v", res)
	}
	if after, _ := h.homonymEntry(a); !bytes.Equal(after, sealedA) {
		t.Fatal("the import wrote a homonym key its voter already held")
	}
	if n := h.bucketLen(bucketHomonyms); n != 2 {
		t.Fatalf("%d homonym keys, want 2", n)
	}
	// Claiming again what is held changes nothing either.
	if got := h.mustApply(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(a)}}).GetImport(); got.Claimed != 0 {
		t.Fatalf("claim of a held key: %v, want none claimed", got)
	}
	entries := detailedEntries(t, h)
	if d := entries[1].Detail; d != "0 imported or rectified, 0 unchanged, 0 on the roll, 2 homonym keys claimed" {
		t.Fatalf("register detail of the claims: %q", d)
	}
	if after, _ := h.homonymEntry(a); !bytes.Equal(after, sealedA) {
		t.Fatal("a claim rewrote a key its voter already held")
	}
}

func TestClaimsAreRefusedForHomonyms(t *testing.T) {
	h := draftCivilService(t)
	a, twin := legalVoter("a", "A"), legalVoter("b", "A")
	twin.Name = a.Name
	// Two voters claiming one key in one command.
	resp := h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(a), claimOf(twin)}}, ErrRuleViolated)
	wantMessage(t, resp, `voter "b" has the same name and date of birth as "a"`)
	// A key that a voter on the roll holds.
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{a}})
	resp = h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(twin)}}, ErrRuleViolated)
	wantMessage(t, resp, `voter "b" has the same name and date of birth as "another voter already on the roll"`)
}

// A claim whose voter never came (an import that stopped between its two passes) is stale:
// the next voter with that name and date of birth takes the key, and the claimant is then
// refused as its homonym.
func TestStaleClaimsGiveWay(t *testing.T) {
	h := draftCivilService(t)
	gone, other := legalVoter("gone", "A"), legalVoter("other", "A")
	other.Name = gone.Name
	h.mustApply(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(gone)}})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{other}})
	if _, owner := h.homonymEntry(other); !bytes.Equal(owner, voterKey(fixedIndexKey, "other")) {
		t.Fatal("the voter did not take the stale claim's key")
	}
	h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{gone}}, ErrRuleViolated)
	h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(gone)}}, ErrRuleViolated)
	// A stale claim also gives way to a claim.
	late := legalVoter("late", "B")
	h.mustApply(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(late)}})
	again := legalVoter("again", "B")
	again.Name = late.Name
	h.mustApply(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(again)}})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{again}})
}

// A claim holds a key only for the voter whose name and date of birth it hashes: a wrong
// one, pointing a voter on the roll to another's key, keeps nobody off the roll.
func TestWrongClaimsKeepNobodyOff(t *testing.T) {
	h := draftCivilService(t)
	x, y := legalVoter("x", "A"), legalVoter("y", "A")
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{x}})
	wrong := &fsmpb.HomonymClaim{Key: claimOf(y).Key, VoterId: "x"}
	h.mustApply(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{wrong}})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{y}})
	if _, owner := h.homonymEntry(y); !bytes.Equal(owner, voterKey(fixedIndexKey, "y")) {
		t.Fatal("the voter did not take the key of the wrong claim")
	}
}

func TestClaimsOnlyWhileDraft(t *testing.T) {
	h := newHarness(t)
	h.openElection("a")
	h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(legalVoter("b", "A"))}}, ErrWrongPhase)
}

// A roll imported as the node proposes it, each tree in key order, fills the pages bbolt splits
// instead of leaving them half empty.
func TestRollInKeyOrderFillsItsPages(t *testing.T) {
	h := draftCivilService(t)
	roll := make([]*fsmpb.VoterRecord, 20000)
	for i := range roll {
		roll[i] = legalVoter(fmt.Sprintf("v%05d", i), "A")
		roll[i].Name = fmt.Sprintf("Voter %d", i)
	}
	for _, p := range inKeyOrder(roll) {
		h.mustApply(typeImport, p)
	}
	err := h.f.view(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketVoters, bucketHomonyms} {
			st := tx.Bucket(b).Stats()
			if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.8 {
				t.Errorf("%s: leaf pages %.0f %% full, want at least 80 %%", b, 100*fill)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
