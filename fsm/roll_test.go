package fsm

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

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
	if err := checkVoter(v); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a plaintext secret was accepted: %v", err)
	}
	for _, h := range []string{"$2b$10$x", "$argon2id$v=19$m=65536,t=3,p=4$x"} {
		v.SecretHash = []byte(h)
		if err := checkVoter(v); err != nil {
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

func TestRectificationsAreJournaled(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{legalVoter("alice", "A"), legalVoter("bob", "A")}})
	changed := legalVoter("alice", "B")
	changed.Email, changed.SecretHash = "alice@new.example.org", []byte(fakeBcrypt+"new")
	res := h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{changed, legalVoter("bob", "A")}}).GetImport()
	if res.Imported != 1 || res.Rectified != 1 || res.Unchanged != 1 || res.TotalVoters != 2 {
		t.Fatalf("import result = %v", res)
	}
	var rectification *fsmpb.JournalRecord
	err := h.f.ForEachJournal(func(r *fsmpb.JournalRecord) error {
		if r.Kind == JournalRollRectified {
			rectification = r
		}
		return nil
	})
	if err != nil || rectification == nil {
		t.Fatalf("no rectification journaled: %v", err)
	}
	if rectification.Detail != "rectified: email, secret, collège" || !bytes.Equal(rectification.Subject, voterKey(fixedIndexKey, "alice")) {
		t.Fatalf("rectification record = %v", rectification)
	}
	if bytes.Contains([]byte(rectification.String()), []byte("alice@new")) {
		t.Fatal("the journal shows the new email")
	}
}

func TestJournalChainDetectsTampering(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	if n, _, err := h.f.VerifyJournal(); err != nil || n != 3 {
		t.Fatalf("journal: %d records, %v", n, err)
	}
	err := h.f.db.Update(func(tx *bolt.Tx) error {
		rec := &fsmpb.JournalRecord{}
		if _, err := getMessage(tx, h.f.sealer, bucketJournal, seqKey(1), rec); err != nil {
			return err
		}
		rec.Detail = "nothing happened"
		return putMessage(tx, h.f.sealer, bucketJournal, seqKey(1), rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.f.VerifyJournal(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a rewritten journal record verified: %v", err)
	}
}

// TestOpensFirstVersionDatabase opens a database holding only the buckets of the first
// version: it is accepted and given the new buckets.
func TestOpensFirstVersionDatabase(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	err := h.f.db.Update(func(tx *bolt.Tx) error {
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
