package archive

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
)

// closedElection runs a test election to its close on a real state machine and returns the
// snapshot stream the leader would send, and its index.
func closedElection(t testing.TB, voters, ballots int) ([]byte, uint64) {
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
	a.apply(fsmpb.CommandType_COMMAND_CREATE_ELECTION, &fsmpb.CreateElection{ElectionId: "e-archive", Name: "Archive test"})
	for start := 0; start < voters; start += fsm.MaxVotersPerCommand {
		var roll []*fsmpb.VoterRecord
		for i := start; i < min(voters, start+fsm.MaxVotersPerCommand); i++ {
			id := fmt.Sprintf("v%04d", i)
			roll = append(roll, &fsmpb.VoterRecord{VoterId: id, Name: "Voter " + id, Email: id + "@example.org"})
		}
		a.apply(fsmpb.CommandType_COMMAND_IMPORT_VOTERS, &fsmpb.ImportVoters{Voters: roll})
	}
	a.apply(fsmpb.CommandType_COMMAND_OPEN_ELECTION, &fsmpb.Transition{})
	for i := range ballots {
		ballot := make([]byte, 64)
		_, _ = rand.Read(ballot)
		a.apply(fsmpb.CommandType_COMMAND_CAST, &fsmpb.Cast{RequestId: fmt.Sprintf("r%d", i), VoterId: fmt.Sprintf("v%04d", i), Ballot: ballot})
	}
	a.apply(fsmpb.CommandType_COMMAND_CLOSE_ELECTION, &fsmpb.Transition{})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.Bytes(), a.index
}

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
	c.Actor = &fsmpb.Actor{Principal: "client:organizer", Ip: "192.0.2.7"}
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

// testKey is a fixed backup key, so that fuzz seeds stay valid between runs.
func testKey(t testing.TB, id string) *backup.Secret {
	t.Helper()
	raw := make([]byte, 32)
	copy(raw, id)
	s, err := backup.ParseKey([]byte("urne-backup-key-v1:" + id + ":" + base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func header(index uint64) backup.Header {
	return backup.Header{ElectionID: "e-archive", Index: index, Term: 2, TakenAt: time.Unix(1700001000, 0).UTC(), NodeID: "dc1-a"}
}

// makeArchive seals a closed election with key id "archive-key".
func makeArchive(t testing.TB, o Options) ([]byte, *Created) {
	t.Helper()
	state, index := closedElection(t, 20, 12)
	var out bytes.Buffer
	c, err := Create(&out, bytes.NewReader(state), testKey(t, "archive-key"), header(index), o)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), c
}
