package fsm

import (
	"bytes"
	"io"
	"testing"

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
		if again := snapshotBytes(t, h.f); !bytes.Equal(again, stream) {
			t.Fatal("an accepted snapshot does not persist back to itself")
		}
	})
}
