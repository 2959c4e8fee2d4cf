package fsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

func TestLegalRollNeedsEveryField(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	v := legalVoter("alice", "A")
	v.DateOfBirth, v.SecretHash = "", nil
	resp := h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{v}}, ErrRuleViolated)
	wantMessage(t, resp, `voter 0 of the import ("alice") lacks date of birth, secret`)
}

func TestSecretMustBeASlowHash(t *testing.T) {
	v := legalVoter("alice", "A")
	v.SecretHash = []byte("1234")
	if err := CheckVoter(v); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a plaintext secret was accepted: %v", err)
	}
	for _, h := range []string{"$2b$10$x", "$argon2id$v=19$m=65536,t=3,p=4$x"} {
		v.SecretHash = []byte(h)
		if err := CheckVoter(v); err != nil {
			t.Fatalf("%s refused: %v", h, err)
		}
	}
}

func TestHomonymsAreRefused(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	a, twin := legalVoter("a", "A"), legalVoter("b", "A")
	a.Name, twin.Name = "Jean  Dupont", "jean dupont"
	// Within one import.
	resp := h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{a, twin}}, ErrRuleViolated)
	wantMessage(t, resp, `voter "b" has the same name and date of birth (1980-01-01) as "a"`)
	// Against the roll.
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{a}})
	h.refusedLeavesNoTrace(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{twin}}, ErrRuleViolated)
	// Another date of birth tells them apart.
	twin.DateOfBirth = "1981-01-01"
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{twin}})
	// Re-importing the same voter is not a homonym of itself.
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{a}})
	// A rectified date frees the old one: a new voter may take it.
	rectified := legalVoter("a", "A")
	rectified.Name, rectified.DateOfBirth = a.Name, "1979-12-31"
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{rectified}})
	third := legalVoter("c", "A")
	third.Name = "Jean Dupont"
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{third}})
}

func TestRectificationsAreRecorded(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{legalVoter("alice", "A"), legalVoter("bob", "A")}})
	changed := legalVoter("alice", "B")
	changed.Email, changed.SecretHash = "alice@new.example.org", []byte(fakeBcrypt+"new")
	res := h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{changed, legalVoter("bob", "A")}}).GetImport()
	if res.Imported != 1 || res.Rectified != 1 || res.Unchanged != 1 || res.TotalVoters != 2 {
		t.Fatalf("import result = %v", res)
	}
	entries := detailedEntries(t, h)
	if got := actionsOf(entries); strings.Join(got, "|") != "create election|import voters|rectify voter|import voters" {
		t.Fatalf("register actions %v", got)
	}
	rect, imported := entries[2], entries[3]
	wantObject := "voter account " + hex.EncodeToString(voterKey(fixedIndexKey, "alice")[:8])
	if rect.Detail != "rectified: email, secret, collège" || rect.Object != wantObject {
		t.Fatalf("rectification entry = %+v", rect)
	}
	// One command, two entries: same command index, actor and time, chained one after the other.
	if rect.RaftIndex != imported.RaftIndex || rect.Time != imported.Time || imported.Prev != rect.Hash() {
		t.Fatalf("entries of one import: %+v then %+v", rect, imported)
	}
	for _, e := range h.entries() {
		if strings.Contains(e.Detail+e.Object, "alice") {
			t.Fatalf("the register names a voter or shows a value: %+v", e)
		}
	}
}

// TestDetailedEntryTamperingDetected rewrites, with the key, the detail of a seal entry: the
// register's chain no longer verifies and the first bad entry is named.
func TestDetailedEntryTamperingDetected(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	var target *audit.Entry
	for _, e := range detailedEntries(t, h) {
		if e.Action == JournalElectionCreated {
			target = e
		}
	}
	if target == nil {
		t.Fatal("no creation entry")
	}
	target.Detail = "nothing happened"
	b, err := target.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	err = h.update(func(tx *bolt.Tx) error { return putSealed(tx, h.f.sealer, bucketRegister, registerKey(target.Seq), b) })
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.f.VerifyRegister(nil)
	var bad *audit.BadEntryError
	if !errors.As(err, &bad) || bad.Seq != target.Seq {
		t.Fatalf("a rewritten entry %d verified or was misnamed: %v", target.Seq, err)
	}
}

// TestOpensFirstVersionDatabase opens a database holding only the buckets of the first
// version: it is accepted and given the new buckets.
func TestOpensFirstVersionDatabase(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	err := h.update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if !bytes.Equal(name, bucketBox) && !bytes.Equal(name, bucketEmargement) && !bytes.Equal(name, bucketMeta) && !bytes.Equal(name, bucketVoters) {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.f.Close()
	again := openHarness(t, h.path, h.f.sealer)
	again.last = again.f.AppliedIndex()
	again.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), h.f.sealer, nil); err != nil {
		t.Fatal(err)
	}
}
