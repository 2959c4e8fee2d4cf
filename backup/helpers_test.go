package backup

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
)

// testState is a state machine with an election, voters and ballots, and its snapshot stream.
type testState struct {
	stream []byte
	index  uint64
	digest []byte
	counts fsm.Counts
}

// makeState builds a real state machine in a temporary folder and returns its snapshot.
func makeState(t testing.TB, voters, ballots int) testState {
	t.Helper()
	kek, err := keyring.GenerateKEK("test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kr, err := keyring.Create(filepath.Join(dir, "keyring"), kek)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := &applier{t: t, f: f}
	a.apply(fsmpb.CommandType_COMMAND_CREATE_ELECTION, &fsmpb.CreateElection{ElectionId: "e-backup", Name: "Backup test"})
	for start := 0; start < voters; start += fsm.MaxVotersPerCommand {
		var batch []*fsmpb.VoterRecord
		for i := start; i < min(voters, start+fsm.MaxVotersPerCommand); i++ {
			id := fmt.Sprintf("v%06d", i)
			batch = append(batch, &fsmpb.VoterRecord{VoterId: id, Name: "Voter " + id, Email: id + "@example.org"})
		}
		a.apply(fsmpb.CommandType_COMMAND_IMPORT_VOTERS, &fsmpb.ImportVoters{Voters: batch})
	}
	a.apply(fsmpb.CommandType_COMMAND_OPEN_ELECTION, &fsmpb.Transition{})
	for i := range ballots {
		ballot := make([]byte, 64)
		_, _ = rand.Read(ballot)
		a.apply(fsmpb.CommandType_COMMAND_CAST, &fsmpb.Cast{RequestId: fmt.Sprintf("r%d", i), VoterId: fmt.Sprintf("v%06d", i), Ballot: ballot})
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	index, digest, err := f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	counts, err := f.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return testState{stream: sink.Bytes(), index: index, digest: digest, counts: counts}
}

// applier feeds commands to a state machine as raft would, one entry each.
type applier struct {
	t     testing.TB
	f     *fsm.FSM
	index uint64
}

func (a *applier) apply(typ fsmpb.CommandType, payload proto.Message) {
	a.t.Helper()
	c, err := fsm.NewCommand(typ, payload)
	if err != nil {
		a.t.Fatal(err)
	}
	a.index++
	if err := fsm.Stamp(c, time.Unix(1700000000+int64(a.index), 0), rand.Reader); err != nil {
		a.t.Fatal(err)
	}
	data, err := fsm.Encode(c)
	if err != nil {
		a.t.Fatal(err)
	}
	resp := a.f.Apply(&raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: data})
	if err := fsm.ResponseError(resp.(*fsmpb.Response)); err != nil {
		a.t.Fatalf("%s: %v", typ, err)
	}
}

type bufferSink struct{ bytes.Buffer }

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Cancel() error { return nil }
func (s *bufferSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*bufferSink)(nil)

// testKey is a fixed backup key, so that fuzz seeds stay valid.
func testKey(t testing.TB, id string) *Secret {
	t.Helper()
	var k [keySize]byte
	copy(k[:], id)
	return &Secret{id: id, key: &k}
}

// seal archives a state stream with s and returns the file.
func seal(t testing.TB, st testState, s *Secret) []byte {
	t.Helper()
	var out bytes.Buffer
	h := Header{ElectionID: "e-backup", Index: st.index, Term: 3, TakenAt: time.Unix(1700000000, 0).UTC(), NodeID: "dc1-a"}
	if _, _, err := Save(&out, bytes.NewReader(st.stream), s, h); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
