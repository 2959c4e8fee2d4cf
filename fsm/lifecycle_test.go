package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

func TestLegalLifecycleInOrder(t *testing.T) {
	h := newHarness(t)
	h.draftLegal()
	if e := h.election(); e.Profile != ProfileCivilService || e.Phase != PhaseDraft {
		t.Fatalf("election = %v", e)
	}
	// Out of order: every transition but sealing is refused on a draft.
	for _, typ := range []fsmpb.CommandType{typeOpen, typeClose, typeArchive} {
		h.as(ActorBureau, func() { h.refusedLeavesNoTrace(typ, &fsmpb.Transition{BuildDigest: build}, ErrWrongPhase) })
	}
	h.as(ActorBureau, func() {
		h.refusedLeavesNoTrace(typeTally, &fsmpb.RecordTally{ResultsDigest: []byte{1}, MinutesDigest: []byte{2}}, ErrWrongPhase)
	})
	// Only the bureau seals, opens and closes a legal election.
	h.as(ActorOrganizer, func() { h.refusedLeavesNoTrace(typeSeal, &fsmpb.SealElection{BuildDigest: build}, ErrNotAllowed) })
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	e := h.election()
	if e.Phase != PhaseSealed || len(e.Seal.Digest) != 32 || !bytes.Equal(e.Seal.BuildDigest, build) || e.Seal.SealedBy != ActorBureau {
		t.Fatalf("sealed election = %v", e)
	}
	for _, to := range []string{"president@example.org", "secretary@example.org"} {
		if m := h.lastMessageTo(to); !strings.Contains(m.Body, "scellé") {
			t.Fatalf("seal notification to %s = %q", to, m.Body)
		}
	}
	// The window has not begun: opening waits for it.
	h.as(ActorBureau, func() {
		resp := h.refusedLeavesNoTrace(typeOpen, &fsmpb.Transition{BuildDigest: build}, ErrOutsideWindow)
		wantMessage(t, resp, "voting opens at")
	})
	h.setClock(opensAt)
	other := bytes.Repeat([]byte{0x01}, BuildDigestSize)
	h.as(ActorBureau, func() {
		resp := h.refusedLeavesNoTrace(typeOpen, &fsmpb.Transition{BuildDigest: other}, ErrRuleViolated)
		wantMessage(t, resp, "was sealed as build")
		h.mustApply(typeOpen, &fsmpb.Transition{BuildDigest: build})
		h.mustApply(typeOpen, &fsmpb.Transition{BuildDigest: build}) // a retry
		resp = h.refusedLeavesNoTrace(typeClose, &fsmpb.Transition{}, ErrRuleViolated)
		wantMessage(t, resp, "may not close earlier")
	})
	// Ticks before the closing time leave the vote open (they may purge what retention says,
	// here the seal notices never delivered); the first one after it closes the box.
	h.setClock(closesAt.Add(-time.Second))
	h.mustApply(typeTick, &fsmpb.Tick{})
	if e := h.election(); e.Phase != PhaseOpen {
		t.Fatalf("a tick before the closing time made the election %s", PhaseName(e.Phase))
	}
	h.setClock(closesAt)
	h.mustApply(typeTick, &fsmpb.Tick{})
	e = h.election()
	if e.Phase != PhaseClosed || e.ClosedBy != "deadline" || e.ClosedAtUnixNano != closesAt.UnixNano() || !bytes.Equal(e.BoxRoot, boxDigest(nil)) {
		t.Fatalf("closed election = %v", e)
	}
	h.as(ActorOrganizer, func() {
		h.refusedLeavesNoTrace(typeTally, &fsmpb.RecordTally{ResultsDigest: []byte{1}, MinutesDigest: []byte{2}}, ErrNotAllowed)
	})
	h.as(ActorBureau, func() {
		h.refusedLeavesNoTrace(typeArchive, &fsmpb.Transition{}, ErrWrongPhase)
		h.mustApply(typeTally, &fsmpb.RecordTally{ResultsDigest: []byte{1}, MinutesDigest: []byte{2}})
		h.refusedLeavesNoTrace(typeTally, &fsmpb.RecordTally{ResultsDigest: []byte{3}, MinutesDigest: []byte{2}}, ErrWrongPhase)
		h.mustApply(typeArchive, &fsmpb.Transition{})
	})
	if e := h.election(); e.Phase != PhaseArchived || e.TalliedAtUnixNano == 0 || e.ArchivedAtUnixNano == 0 {
		t.Fatalf("archived election = %v", e)
	}
	wantJournalKinds(t, h, JournalElectionCreated, JournalElectionConfigured, JournalScrutinPut, JournalListPut,
		JournalKeySet, JournalRollImported, JournalSealed, JournalOpened, JournalRetention, JournalClosed, JournalTallied, JournalArchived)
}

// refusedLeavesNoTraceOK applies a command that must answer OK and change nothing.
func (h *harness) refusedLeavesNoTraceOK(typ fsmpb.CommandType) {
	h.t.Helper()
	before := h.digestWithoutIndex()
	h.mustApply(typ, &fsmpb.Tick{})
	if !bytes.Equal(before, h.digestWithoutIndex()) {
		h.t.Fatalf("%s changed the state", typ)
	}
}

// detailedActions are the actions a handler names itself (see register_notes.go).
var detailedActions = map[string]bool{JournalElectionCreated: true, JournalElectionConfigured: true,
	JournalScrutinPut: true, JournalListPut: true, JournalKeySet: true, JournalRollImported: true,
	JournalRollRectified: true, JournalSealed: true, JournalOpened: true, JournalClosed: true,
	JournalTallied: true, JournalArchived: true, JournalIdentifiersIssued: true, JournalLoginFailed: true,
	JournalCodeFailed: true, JournalAccountLocked: true, JournalAccountUnlocked: true, JournalSessionOpened: true,
	JournalRetention: true, JournalDestructionRequested: true, JournalDataDestroyed: true}

// detailedEntries returns the register's successful entries of detailed actions, in order,
// once the whole chain verified.
func detailedEntries(t *testing.T, h *harness) []*audit.Entry {
	t.Helper()
	if _, err := h.f.VerifyRegister(nil); err != nil {
		t.Fatalf("register chain: %v", err)
	}
	var out []*audit.Entry
	for _, e := range h.entries() {
		if e.Outcome == audit.OutcomeOK && detailedActions[e.Action] && e.Detail != NothingChanged {
			out = append(out, e)
		}
	}
	return out
}

func actionsOf(entries []*audit.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Action
	}
	return out
}

func wantJournalKinds(t *testing.T, h *harness, kinds ...string) {
	t.Helper()
	if got := actionsOf(detailedEntries(t, h)); strings.Join(got, "|") != strings.Join(kinds, "|") {
		t.Fatalf("register actions:\n got %v\nwant %v", got, kinds)
	}
}

func TestNothingChangesAfterSealing(t *testing.T) {
	h := newHarness(t)
	h.draftLegal()
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	changes := []struct {
		typ     fsmpb.CommandType
		payload proto.Message
	}{
		{typeConfigure, &fsmpb.ConfigureElection{Config: &fsmpb.ElectionConfig{Organizer: "someone else"}}},
		{typeScrutin, &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "cap", Name: "CAP"}}},
		{typeList, &fsmpb.PutCandidateList{List: &fsmpb.CandidateList{ScrutinId: "ct", ListId: "L2", Name: "Liste 2", Candidates: femaleMale()}}},
		{typeKey, &fsmpb.SetElectionKey{PublicKey: []byte("another key")}},
		{typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{legalVoter("dave", "A")}}},
	}
	for _, c := range changes {
		resp := h.refusedLeavesNoTrace(c.typ, c.payload, ErrSealed)
		wantMessage(t, resp, "was sealed at", "can no longer change")
	}
}

func TestSealNeedsACompleteLegalElection(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	h.as(ActorBureau, func() {
		resp := h.refusedLeavesNoTrace(typeSeal, &fsmpb.SealElection{BuildDigest: build}, ErrRuleViolated)
		wantMessage(t, resp, "organizer, controller and processor", "a bureau with a president", "a voter roll",
			"the election public key", "at least one scrutin")
	})
	h.mustApply(typeScrutin, &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "cap", Name: "CAP"}})
	h.as(ActorBureau, func() {
		resp := h.refusedLeavesNoTrace(typeSeal, &fsmpb.SealElection{BuildDigest: build}, ErrRuleViolated)
		wantMessage(t, resp, "a candidate list in every scrutin (none in cap)")
	})
	// A test election seals as it is.
	test := newHarness(t)
	test.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	test.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build})
}

// TestOpeningChecksSealAndEmptyBox tampers with the sealed roll, then with the box, behind
// the state machine's back: opening refuses both.
func TestOpeningChecksSealAndEmptyBox(t *testing.T) {
	for _, tamper := range []string{"roll", "box"} {
		t.Run(tamper, func(t *testing.T) {
			h := newHarness(t)
			h.draftLegal()
			h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
			err := h.update(func(tx *bolt.Tx) error {
				if tamper == "box" {
					return putSealed(tx, h.f.sealer, bucketBox, bytes.Repeat([]byte{1}, 32), []byte("stuffed"))
				}
				key := voterKey(fixedIndexKey, "alice")
				v := legalVoter("alice", "B")
				return putMessage(tx, h.f.sealer, bucketVoters, key, v)
			})
			if err != nil {
				t.Fatal(err)
			}
			h.setClock(opensAt)
			h.as(ActorBureau, func() {
				resp := h.apply(typeOpen, &fsmpb.Transition{BuildDigest: build})
				wantCode(t, resp, ErrRuleViolated)
				if tamper == "box" {
					wantMessage(t, resp, "the box is not empty")
				} else {
					wantMessage(t, resp, "no longer matches its seal")
				}
			})
			recorded, now, err := h.f.SealDigest()
			if err != nil || (tamper == "roll") == bytes.Equal(recorded, now) {
				t.Fatalf("SealDigest after tampering the %s: %x vs %x, %v", tamper, recorded, now, err)
			}
		})
	}
}

func TestVotingWindowRules(t *testing.T) {
	hour := int64(time.Hour)
	future := baseTime.Add(24 * time.Hour).UnixNano()
	cases := []struct {
		name           string
		profile        string
		opens, closes  int64
		want           error
		messageContain string
	}{
		{"only opening", ProfileCivilService, future, 0, ErrRuleViolated, "both an opening and a closing"},
		{"closes before opening", ProfileCivilService, future, future - hour, ErrRuleViolated, "before it opens"},
		{"23 hours", ProfileCivilService, future, future + 23*hour, ErrRuleViolated, "24h0m0s to 192h0m0s"},
		{"24 hours", ProfileCivilService, future, future + 24*hour, nil, ""},
		{"8 days", ProfileCivilService, future, future + 192*hour, nil, ""},
		{"8 days and a second", ProfileCivilService, future, future + 192*hour + int64(time.Second), ErrRuleViolated, "the decrees allow"},
		{"already begun", ProfileCivilService, baseTime.UnixNano(), baseTime.Add(48 * time.Hour).UnixNano(), ErrRuleViolated, "already passed"},
		{"test election, one minute", ProfileTest, future, future + int64(time.Minute), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: tc.profile})
			cfg := &fsmpb.ElectionConfig{OpensAtUnixNano: tc.opens, ClosesAtUnixNano: tc.closes}
			if tc.want == nil {
				h.mustApply(typeConfigure, &fsmpb.ConfigureElection{Config: cfg})
				return
			}
			wantMessage(t, h.refusedLeavesNoTrace(typeConfigure, &fsmpb.ConfigureElection{Config: cfg}, tc.want), tc.messageContain)
		})
	}
}

func TestTickClosesATestElectionOnTime(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	opens, closes := stampTime(3), stampTime(3).Add(time.Minute)
	h.mustApply(typeConfigure, &fsmpb.ConfigureElection{Config: &fsmpb.ElectionConfig{
		OpensAtUnixNano: opens.UnixNano(), ClosesAtUnixNano: closes.UnixNano()}})
	h.mustApply(typeImport, voters("alice", "bob"))
	h.mustApply(typeOpen, &fsmpb.Transition{})
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	h.setClock(closes.Add(-time.Millisecond))
	h.mustApply(typeTick, &fsmpb.Tick{})
	// A cast stamped after the closing time, before any tick: outside the window.
	h.setClock(closes)
	resp := h.refusedLeavesNoTrace(typeCast, cast("r2", "bob", "ballot-B"), ErrOutsideWindow)
	wantMessage(t, resp, "voting closed at")
	h.mustApply(typeTick, &fsmpb.Tick{})
	e := h.election()
	fp := digestOf([]byte("ballot-A"))
	if e.Phase != PhaseClosed || e.ClosedBy != "deadline" || !bytes.Equal(e.BoxRoot, merkleHash(0, fp[:])) {
		t.Fatalf("election after the deadline tick = %v", e)
	}
	h.refusedLeavesNoTrace(typeCast, cast("r3", "bob", "ballot-B"), ErrWrongPhase)
}

func TestBoxDigestIsTheRFC9162Tree(t *testing.T) {
	fp := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	leaf := func(b byte) []byte { return merkleHash(0, fp(b)) }
	node := func(l, r []byte) []byte { return merkleHash(1, l, r) }
	three := node(node(leaf(1), leaf(2)), leaf(3))
	if got := boxDigest([][]byte{fp(1), fp(2), fp(3)}); !bytes.Equal(got, three) {
		t.Fatalf("root of three = %x, want %x", got, three)
	}
	five := node(node(node(leaf(1), leaf(2)), node(leaf(3), leaf(4))), leaf(5))
	if got := boxDigest([][]byte{fp(1), fp(2), fp(3), fp(4), fp(5)}); !bytes.Equal(got, five) {
		t.Fatalf("root of five = %x, want %x", got, five)
	}
}

func TestTestElectionStillTakesOpaqueCastsWithoutSealing(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	if e := h.election(); e.Profile != ProfileTest || e.Seal != nil {
		t.Fatalf("test election = %v", e)
	}
}

func TestLegalElectionRefusesOpaqueCasts(t *testing.T) {
	h := newHarness(t)
	h.openLegal()
	resp := h.refusedLeavesNoTrace(typeCast, cast("r1", "alice", "ballot-A"), ErrNotAllowed)
	wantMessage(t, resp, "needs a voting session and a sealed envelope")
}

func TestProfileIsChecked(t *testing.T) {
	h := newHarness(t)
	resp := h.refusedLeavesNoTrace(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: "municipal"}, ErrInvalid)
	wantMessage(t, resp, `profile "municipal"`)
	if _, _, err := h.f.Election(); !errors.Is(err, ErrNoElection) {
		t.Fatalf("a refused profile left an election: %v", err)
	}
}

// The integrity check's seal digest is computed only once there is a seal to compare it with:
// an unsealed election (a draft, or a test election opened as it is) costs no pass over the
// roll. Once sealed, the digest is recomputed and matches.
func TestSealDigestOnlyOnceSealed(t *testing.T) {
	h := newHarness(t)
	h.draftLegal()
	if recorded, now, err := h.f.SealDigest(); err != nil || recorded != nil || now != nil {
		t.Fatalf("SealDigest of a draft: %x, %x, %v; want nothing", recorded, now, err)
	}
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	recorded, now, err := h.f.SealDigest()
	if err != nil || len(recorded) == 0 || !bytes.Equal(recorded, now) {
		t.Fatalf("SealDigest once sealed: %x, %x, %v", recorded, now, err)
	}
}
