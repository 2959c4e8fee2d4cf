package fsm

import (
	"bytes"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// openWithSessions opens the legal election with identifiers issued and alice and carol
// logged in.
func openWithSessions(t testing.TB) (h *harness, alice, aliceNonce, carol, carolNonce []byte) {
	h = newHarness(t)
	h.sealedWithIdentifiers()
	h.setClock(opensAt)
	h.as(ActorBureau, func() { h.mustApply(typeOpen, &fsmpb.Transition{BuildDigest: build}) })
	alice, aliceNonce = h.login("alice", phone)
	carol, carolNonce = h.login("carol", "+33700000000")
	return h, alice, aliceNonce, carol, carolNonce
}

func sessionCast(request string, session, nonce []byte, scrutin, ballot string) *fsmpb.Cast {
	return &fsmpb.Cast{RequestId: request, SessionHash: session, ScrutinId: scrutin, Ballot: []byte(ballot), EnvelopeNonce: nonce}
}

func TestLegalCastPath(t *testing.T) {
	h, alice, nonce, carol, carolNonce := openWithSessions(t)
	first := h.mustApply(typeCast, sessionCast("r1", alice, nonce, "ct", "inner-A")).GetCast()
	if first.Replayed || first.ScrutinId != "ct" || len(first.Fingerprint) != 32 {
		t.Fatalf("receipt = %v", first)
	}
	retry := h.mustApply(typeCast, sessionCast("r1", alice, nonce, "ct", "inner-A")).GetCast()
	if !retry.Replayed || retry.EmargedAtUnixNano != first.EmargedAtUnixNano {
		t.Fatalf("retry = %v", retry)
	}
	refusals := []struct {
		name string
		cast *fsmpb.Cast
		want error
		msg  string
	}{
		{"second cast", sessionCast("r2", alice, nonce, "ct", "inner-A2"), ErrAlreadyVoted, "already has an émargement"},
		{"scrutin not assigned", sessionCast("r3", carol, carolNonce, "ct", "inner-C"), ErrNotAllowed, `not assigned to scrutin "ct"`},
		{"unknown scrutin", sessionCast("r4", carol, carolNonce, "cap", "inner-C"), ErrNotFound, `scrutin "cap" does not exist`},
		{"no scrutin", sessionCast("r5", carol, carolNonce, "", "inner-C"), ErrInvalid, "names no scrutin"},
		{"unknown session", sessionCast("r6", tokenHash("forged"), nonce, "ct", "inner-X"), ErrSessionInvalid, "unknown session"},
		{"pending login is no session", sessionCast("r7", tokenHash("challenge of alice"+phone), nonce, "ct", "inner-X"), ErrSessionInvalid, "unknown session"},
		{"another nonce", sessionCast("r8", alice, bytes.Repeat([]byte{1}, EnvelopeNonceSize), "ct", "inner-X"), ErrSessionInvalid, "nonce this session was not given"},
	}
	for _, r := range refusals {
		resp := h.refusedLeavesNoTrace(typeCast, r.cast, r.want)
		wantMessage(t, resp, r.msg)
	}
	h.setClock(closesAt)
	h.mustApply(typeTick, &fsmpb.Tick{})
	// The close purged every session: even a retry is now refused, saying the vote is closed
	// (its ballot is in the box: the published fingerprints show it).
	wantMessage(t, h.refusedLeavesNoTrace(typeCast, sessionCast("r1", alice, nonce, "ct", "inner-A"), ErrWrongPhase), "closed")
	if n := h.bucketLen(bucketSessions); n != 0 {
		t.Fatalf("%d sessions left after the close", n)
	}
	e := h.election()
	if !bytes.Equal(e.BoxRoot, merkleHash(0, first.Fingerprint)) {
		t.Fatalf("box root %x does not cover the one ballot", e.BoxRoot)
	}
}

func TestCastOutsideTheWindow(t *testing.T) {
	h, _, _, _, _ := openWithSessions(t)
	h.setClock(closesAt.Add(-time.Minute))
	alice, nonce := h.login("alice", "+33711111111")
	h.setClock(closesAt.Add(time.Millisecond)) // before the tick
	wantMessage(t, h.refusedLeavesNoTrace(typeCast, sessionCast("r1", alice, nonce, "ct", "late"), ErrOutsideWindow), "voting closed at")
	h.mustApply(typeTick, &fsmpb.Tick{})
	h.refusedLeavesNoTrace(typeCast, sessionCast("r2", alice, nonce, "ct", "later"), ErrWrongPhase)
	// Before opening: a sealed election takes no cast.
	early := newHarness(t)
	early.sealedWithIdentifiers()
	s, n := early.login("alice", phone)
	early.refusedLeavesNoTrace(typeCast, sessionCast("r1", s, n, "ct", "early"), ErrWrongPhase)
}

// TestLegalBoxHoldsNoTimeAndNoVoter opens the stored records after a cast: the box entry is
// the scrutin and the inner ballot; the émargement has the time and no fingerprint.
func TestLegalBoxHoldsNoTimeAndNoVoter(t *testing.T) {
	h, alice, nonce, _, _ := openWithSessions(t)
	receipt := h.mustApply(typeCast, sessionCast("r1", alice, nonce, "ct", "inner-A")).GetCast()
	err := h.f.view(func(tx *bolt.Tx) error {
		plain, _, err := getOpened(tx, h.f.sealer, bucketBox, receipt.Fingerprint)
		if err != nil {
			return err
		}
		want, _ := proto.Marshal(&fsmpb.BoxEntry{ScrutinId: "ct", Ballot: []byte("inner-A")})
		if !bytes.Equal(plain, want) {
			t.Fatalf("box value = %x, want the scrutin and the ballot alone", plain)
		}
		return tx.Bucket(bucketEmargement).ForEach(func(k, _ []byte) error {
			em, _, err := getOpened(tx, h.f.sealer, bucketEmargement, k)
			if bytes.Contains(em, receipt.Fingerprint) || bytes.Contains(em, []byte("inner-A")) {
				t.Fatal("the émargement names the ballot")
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ballots []string
	err = h.f.ForEachBallot(func(fp []byte, scrutin string, ballot []byte) error {
		ballots = append(ballots, scrutin+":"+string(ballot))
		return nil
	})
	if err != nil || len(ballots) != 1 || ballots[0] != "ct:inner-A" {
		t.Fatalf("ForEachBallot = %v, %v", ballots, err)
	}
}

func TestEmargementList(t *testing.T) {
	h, alice, nonce, _, _ := openWithSessions(t)
	receipt := h.mustApply(typeCast, sessionCast("r1", alice, nonce, "ct", "inner-A")).GetCast()
	var entries []EmargementEntry
	if err := h.f.ForEachEmargement(func(e EmargementEntry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].VoterID != "alice" || entries[0].ScrutinID != "ct" ||
		entries[0].EmargedAt != receipt.EmargedAtUnixNano || entries[0].Name != "Name of alice" {
		t.Fatalf("émargement list = %+v", entries)
	}
	if _, _, err := h.f.HasVoted("alice"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("HasVoted in a legal election: %v", err)
	}
	test := newHarness(t)
	test.openElection("zoe", "yann")
	test.mustApply(typeCast, cast("r1", "yann", "b"))
	entries = nil
	if err := test.f.ForEachEmargement(func(e EmargementEntry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].VoterID != "yann" || entries[0].ScrutinID != "" {
		t.Fatalf("test émargement list = %+v", entries)
	}
}

func TestOutboxDelivery(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	pending := h.outbox()
	if len(pending) != 5 || h.counts().Index == 0 || h.f.OutboxPending() != 5 { // two bureau notifications, three identifiers
		t.Fatalf("outbox = %d messages, %d said without a read", len(pending), h.f.OutboxPending())
	}
	first := pending[0]
	h.mustApply(typeDone, &fsmpb.OutboxDone{Seq: first.Seq, Detail: "primary: 421 try later"})
	if m := h.outbox()[0]; m.Seq != first.Seq || m.Attempts != 1 || m.LastError != "primary: 421 try later" {
		t.Fatalf("failed delivery recorded as %v", m)
	}
	h.mustApply(typeDone, &fsmpb.OutboxDone{Seq: first.Seq, Delivered: true, Detail: "backup"})
	if left := h.outbox(); len(left) != 4 || left[0].Seq == first.Seq || h.f.OutboxPending() != 4 {
		t.Fatalf("delivered message still queued: %v (%d said without a read)", left, h.f.OutboxPending())
	}
	before := h.digestWithoutIndex()
	h.mustApply(typeDone, &fsmpb.OutboxDone{Seq: first.Seq, Delivered: true})
	if !bytes.Equal(before, h.digestWithoutIndex()) {
		t.Fatal("a repeated delivery report changed the state")
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := openHarness(t, h.path, h.f.sealer).f.OutboxPending(); n != 4 {
		t.Fatalf("after a restart the outbox holds %d messages, said without a read; want 4", n)
	}
}
