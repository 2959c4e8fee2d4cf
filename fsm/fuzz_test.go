package fsm

import (
	"bytes"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// commandSeeds are encoded commands of every type, plus an unknown one.
func commandSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, c := range []struct {
		typ fsmpb.CommandType
		p   proto.Message
	}{
		{typeCreate, &fsmpb.CreateElection{ElectionId: electionID}},
		{typeCreate, &fsmpb.CreateElection{ElectionId: "other"}},
		{typeImport, voters("zed")},
		{typeOpen, &fsmpb.Transition{}},
		{typeClose, &fsmpb.Transition{}},
		{typeCast, cast("r9", "bob", "ballot-B")},
		{typeCast, cast("r1", "alice", "ballot-A")},
		{typeCast, cast("r2", "bob", "ballot-A")},
		{typeNoop, nil},
		{fsmpb.CommandType(77), nil},
		{typeConfigure, &fsmpb.ConfigureElection{Config: legalConfig()}},
		{typeScrutin, &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "ct", Name: "CT", ListRule: &fsmpb.ListRule{GenderBalance: true, WomenSharePermille: 500}}}},
		{typeList, &fsmpb.PutCandidateList{List: &fsmpb.CandidateList{ScrutinId: "ct", ListId: "L", Name: "L", Candidates: femaleMale()}}},
		{typeKey, &fsmpb.SetElectionKey{PublicKey: []byte("pk")}},
		{typeSeal, &fsmpb.SealElection{BuildDigest: build}},
		{typeTick, &fsmpb.Tick{}},
		{typeTally, &fsmpb.RecordTally{ResultsDigest: []byte{1}, MinutesDigest: []byte{2}}},
		{typeArchive, &fsmpb.Transition{}},
		{typeIssue, &fsmpb.IssueIdentifiers{Limit: 1}},
		{typeDone, &fsmpb.OutboxDone{Seq: 0, Delivered: true}},
		{typeLogin, &fsmpb.RecordLogin{Identifier: "ABCDEFGHJKLM"}},
		{typeOTP, &fsmpb.RequestOTP{ChallengeHash: tokenHash("c"), Phone: "+33612345678"}},
		{typeVerify, &fsmpb.VerifyOTP{ChallengeHash: tokenHash("c"), SessionHash: tokenHash("s"), Code: "123456"}},
		{typeUnlock, &fsmpb.UnlockAccount{VoterId: "alice", Reason: "checked"}},
		{typeCast, sessionCast("r3", tokenHash("s"), bytes.Repeat([]byte{1}, EnvelopeNonceSize), "", "inner")},
		{typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{legalVoter("dan", "A")}}},
		{typeImport, &fsmpb.ImportVoters{Claims: []*fsmpb.HomonymClaim{claimOf(legalVoter("eve", "A")), claimOf(legalVoter("dan", "A"))}}},
		{typeCastBatch, castBatchOf(t, cast("r1", "alice", "ballot-A"), cast("r1", "alice", "ballot-A"), cast("r8", "carol", "ballot-C"))},
	} {
		seeds = append(seeds, encode(t, command(t, c.typ, c.p, 100)))
	}
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range commandSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		_ = Validate(c)
		again, err := Encode(c)
		if err != nil {
			t.Fatalf("a decoded command does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil || !proto.Equal(back, c) {
			t.Fatalf("re-encoded command decodes to %v, %v", back, err)
		}
	})
}

// fuzzPair is two replicas at the same state: alice has voted, bob has not.
func fuzzPair(t *testing.T) (*harness, *harness) {
	a, b := newHarness(t), newHarness(t)
	for _, h := range []*harness{a, b} {
		h.openElection("alice", "bob")
		h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	}
	return a, b
}

// FuzzApply feeds raw entry data: Apply must answer a response, never panic, and a
// refused entry must change nothing but the applied index.
func FuzzApply(f *testing.F) {
	for _, s := range commandSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := fuzzPair(t)
		a.last++
		resp := a.applyLog(commandLog(a.last, data))
		b.mustApply(typeNoop, nil)
		if resp.Code != fsmpb.ResponseCode_RESPONSE_OK && !bytes.Equal(a.digest(), b.digest()) {
			t.Fatalf("refused entry (%v) changed the state", resp)
		}
		if a.f.AppliedIndex() != a.last {
			t.Fatal("applied index did not advance")
		}
	})
}

// FuzzRestore feeds raw snapshot streams: a refused stream keeps the state; an accepted
// one is canonical, so persisting it again gives back the same bytes.
func FuzzRestore(f *testing.F) {
	src := newHarness(f)
	f.Add(snapshotBytes(f, src.f))
	src.openElection("alice", "bob")
	src.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	good := snapshotBytes(f, src.f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(snapshotMagic))
	f.Add(referenceBytes(f, 7))
	f.Fuzz(func(t *testing.T, stream []byte) {
		h := newHarness(t)
		h.openElection("zoe")
		before := h.digest()
		if err := h.f.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
			if !bytes.Equal(h.digest(), before) {
				t.Fatalf("refused restore (%v) changed the state", err)
			}
			return
		}
		if _, ref := h.f.SnapshotReference(stream); ref {
			if !bytes.Equal(h.digest(), before) {
				t.Fatal("an accepted reference changed the state")
			}
			return
		}
		if again := snapshotBytes(t, h.f); !bytes.Equal(again, stream) {
			t.Fatal("an accepted snapshot does not persist back to itself")
		}
	})
}

// FuzzSnapshotReference reads raw snapshot bytes as a reference: only the exact encoding of
// an index passes, and it encodes back to itself.
func FuzzSnapshotReference(f *testing.F) {
	h := newHarness(f)
	f.Add(referenceBytes(f, 0))
	f.Add(referenceBytes(f, 1<<40))
	f.Add(snapshotBytes(f, h.f))
	f.Add([]byte(referenceMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		index, ok := h.f.SnapshotReference(b)
		if ok && !bytes.Equal(referenceBytes(t, index), b) {
			t.Fatalf("%x passes as a reference to %d, which encodes otherwise", b, index)
		}
		if !ok && len(b) == referenceSize && bytes.Equal(referenceBytes(t, binary.BigEndian.Uint64(b[12:])), b) {
			t.Fatalf("the reference %x is not recognized", b)
		}
	})
}

func referenceBytes(t testing.TB, index uint64) []byte {
	sink := &memorySink{}
	if err := reference(index).Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// FuzzApplyLegal feeds raw entry data to two replicas of an open legal election with live
// sessions: a refused entry changes nothing but the applied index, an accepted one changes
// both replicas alike.
func FuzzApplyLegal(f *testing.F) {
	for _, s := range commandSeeds(f) {
		f.Add(s)
	}
	tmpl, _, _, _, _ := openWithSessions(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := copyHarness(t, tmpl), copyHarness(t, tmpl)
		before := a.digestWithoutIndex()
		a.last++
		resp := a.applyLog(commandLog(a.last, data))
		b.last++
		again := b.applyLog(commandLog(b.last, data))
		if !proto.Equal(resp, again) || !bytes.Equal(a.digest(), b.digest()) {
			t.Fatalf("replicas disagree on %x: %v vs %v", data, resp, again)
		}
		if resp.Code != fsmpb.ResponseCode_RESPONSE_OK && !bytes.Equal(before, a.digestWithoutIndex()) {
			t.Fatalf("refused entry (%v) changed the state", resp)
		}
	})
}

// copyHarness opens a copy of another harness's database, with its clock.
func copyHarness(t *testing.T, src *harness) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	err := src.f.view(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
	if err != nil {
		t.Fatal(err)
	}
	h := openHarness(t, path, src.f.sealer)
	h.last, h.shift = h.f.AppliedIndex(), src.shift
	return h
}
