package fsm

import (
	bolt "go.etcd.io/bbolt"

	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

var (
	typeRequestDestruction   = fsmpb.CommandType_COMMAND_REQUEST_DESTRUCTION
	typeAuthorizeDestruction = fsmpb.CommandType_COMMAND_AUTHORIZE_DESTRUCTION
	typeErasure              = fsmpb.CommandType_COMMAND_RECORD_ERASURE
)

// archivedLegal runs the legal election, with alice's ballot in the box, to its archive.
func (h *harness) archivedLegal() {
	h.t.Helper()
	h.sealedWithIdentifiers()
	h.setClock(opensAt)
	h.as(ActorBureau, func() { h.mustApply(typeOpen, &fsmpb.Transition{BuildDigest: build}) })
	session, nonce := h.login("alice", phone)
	h.mustApply(typeCast, sessionCast("r1", session, nonce, "ct", "inner-A"))
	h.setClock(closesAt)
	h.mustApply(typeTick, &fsmpb.Tick{})
	h.as(ActorBureau, func() {
		h.mustApply(typeTally, &fsmpb.RecordTally{ResultsDigest: make([]byte, 32), MinutesDigest: make([]byte, 32)})
		h.mustApply(typeArchive, &fsmpb.Transition{ArchiveDigest: make([]byte, 32)})
	})
}

func (h *harness) electionState() *fsmpb.ElectionState {
	h.t.Helper()
	var e *fsmpb.ElectionState
	if err := h.f.view(func(tx *bolt.Tx) error {
		var err error
		e, err = readElection(tx, h.f.sealer)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return e
}

// TestDestructionNeedsTwoPrincipalsAndTheDate: the processor asks, the controller authorizes,
// never before two years after the vote, never one principal for both steps.
func TestDestructionNeedsTwoPrincipalsAndTheDate(t *testing.T) {
	h := newHarness(t)
	h.archivedLegal()
	due := closesAt.AddDate(ArchiveRetentionYears, 0, 0)

	h.as(ActorOperator, func() { h.refusedLeavesNoTrace(typeRequestDestruction, &fsmpb.DestructionStep{}, ErrRuleViolated) })
	h.setClock(due)
	h.as(ActorOrganizer, func() { h.refusedLeavesNoTrace(typeRequestDestruction, &fsmpb.DestructionStep{}, ErrNotAllowed) })
	h.as(ActorOrganizer, func() { h.refusedLeavesNoTrace(typeAuthorizeDestruction, &fsmpb.DestructionStep{}, ErrRuleViolated) })
	h.as(ActorOperator, func() {
		h.mustApply(typeRequestDestruction, &fsmpb.DestructionStep{Reason: "retention period over"})
		h.refusedLeavesNoTrace(typeAuthorizeDestruction, &fsmpb.DestructionStep{}, ErrNotAllowed)
	})
	h.as(ActorBureau, func() { h.refusedLeavesNoTrace(typeAuthorizeDestruction, &fsmpb.DestructionStep{}, ErrNotAllowed) })
	h.refusedLeavesNoTrace(typeErasure, &fsmpb.RecordErasure{NodeId: "dc1-a"}, ErrRuleViolated)

	h.as(ActorOrganizer, func() { h.mustApply(typeAuthorizeDestruction, &fsmpb.DestructionStep{}) })
	for _, b := range destroyedBuckets {
		want := 0
		if string(b) == "journal" {
			want = 1 // the journal restarts with the destruction itself
		}
		if n := h.countBucket(b); n != want {
			t.Errorf("bucket %s holds %d records after the destruction", b, n)
		}
	}
	if h.countBucket(bucketLists) != 1 || h.countBucket(bucketScrutins) != 1 {
		t.Fatal("the candidate lists were destroyed")
	}
	e := h.electionState()
	if len(e.IndexKey) != 0 || e.Config.Bureau[0].Email != "" || e.Config.Bureau[0].Name != "Ada President" {
		t.Fatalf("election after destruction: index key %x, bureau %v", e.IndexKey, e.Config.Bureau)
	}
	d := e.Destruction
	if d.RequestedBy != ActorOperator || d.AuthorizedBy != ActorOrganizer || d.DueAtUnixNano != due.UnixNano() ||
		!strings.Contains(strings.Join(d.Destroyed, ";"), "voters: 3 records") {
		t.Fatalf("destruction record: %v", d)
	}
	// Each node reports its erasure; a repeat replaces its report.
	h.mustApply(typeErasure, &fsmpb.RecordErasure{NodeId: "dc1-a", Keys: []string{"k1"}})
	h.mustApply(typeErasure, &fsmpb.RecordErasure{NodeId: "dc1-a", Keys: []string{"k1", "k2"}})
	h.mustApply(typeErasure, &fsmpb.RecordErasure{NodeId: "dc2-a"})
	if got := h.electionState().Destruction.Erasures; len(got) != 2 || len(got[0].Keys) != 2 {
		t.Fatalf("erasures: %v", got)
	}
	// What is left checks out at open (the box digests start again from the empty box), and
	// the register still verifies.
	if _, err := h.f.VerifyRegister(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.f.CheckBox(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open(h.path, newSealer(t, 1), nil, true); err != nil {
		t.Fatal(err)
	}
}

// TestDestructionDateOverride: the election's own deletion date comes before the two years.
func TestDestructionDateOverride(t *testing.T) {
	e := &fsmpb.ElectionState{Profile: ProfileCivilService, ClosedAtUnixNano: closesAt.UnixNano()}
	if got := time.Unix(0, DestructionDue(e)).UTC(); !got.Equal(closesAt.AddDate(2, 0, 0)) {
		t.Fatalf("default due %s", got)
	}
	e.Config = &fsmpb.ElectionConfig{DeletionAtUnixNano: closesAt.Add(90 * 24 * time.Hour).UnixNano()}
	if got := DestructionDue(e); got != e.Config.DeletionAtUnixNano {
		t.Fatalf("override ignored: %d", got)
	}
	if DestructionDue(&fsmpb.ElectionState{}) != 0 {
		t.Fatal("an election that never closed is due")
	}
}
