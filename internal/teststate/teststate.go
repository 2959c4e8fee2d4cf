// Package teststate builds real election state machines, and their snapshot streams, for the
// tests of the packages that read those streams (backup, archive).
package teststate

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

// Options describe the election to build: a test election of Voters voters ("v000000", ...),
// the first Ballots of whom cast a random 64-byte ballot, closed when Close is set.
type Options struct {
	ElectionID, Name string
	Voters, Ballots  int
	Close            bool
}

// State is the built state machine's snapshot stream, its applied index, state digest and
// counts.
type State struct {
	Stream []byte
	Index  uint64
	Digest []byte
	Counts fsm.Counts
}

// Build applies the election's commands to a state machine in a temporary folder, one raft
// entry each, as the organizer at a documentation address, and snapshots it.
func Build(t testing.TB, o Options) State {
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
	a.apply(fsmpb.CommandType_COMMAND_CREATE_ELECTION, &fsmpb.CreateElection{ElectionId: o.ElectionID, Name: o.Name})
	for start := 0; start < o.Voters; start += fsm.MaxVotersPerCommand {
		var roll []*fsmpb.VoterRecord
		for i := start; i < min(o.Voters, start+fsm.MaxVotersPerCommand); i++ {
			id := fmt.Sprintf("v%06d", i)
			roll = append(roll, &fsmpb.VoterRecord{VoterId: id, Name: "Voter " + id, Email: id + "@example.org"})
		}
		a.apply(fsmpb.CommandType_COMMAND_IMPORT_VOTERS, &fsmpb.ImportVoters{Voters: roll})
	}
	a.apply(fsmpb.CommandType_COMMAND_OPEN_ELECTION, &fsmpb.Transition{})
	for i := range o.Ballots {
		ballot := make([]byte, 64)
		_, _ = rand.Read(ballot)
		a.apply(fsmpb.CommandType_COMMAND_CAST, &fsmpb.Cast{RequestId: fmt.Sprintf("r%d", i), VoterId: fmt.Sprintf("v%06d", i), Ballot: ballot})
	}
	if o.Close {
		a.apply(fsmpb.CommandType_COMMAND_CLOSE_ELECTION, &fsmpb.Transition{})
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
	return State{Stream: sink.Bytes(), Index: index, Digest: digest, Counts: counts}
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

var _ raft.SnapshotSink = (*bufferSink)(nil)
