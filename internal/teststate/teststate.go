// Package teststate builds real election state machines, and their snapshot streams, by
// applying real commands to the fsm package: for the tests of the packages that read those
// streams (backup, archive) and for `urne bench restore`.
package teststate

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// TB is the part of testing.TB that Build uses.
type TB interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
}

// Build applies the election's commands to a state machine in a temporary folder, one raft
// entry each, as the organizer at a documentation address, and snapshots it.
func Build(t TB, o Options) State {
	t.Helper()
	st, err := build(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func build(dir string, o Options) (State, error) {
	b, err := NewBuilder(dir)
	if err != nil {
		return State{}, err
	}
	defer b.Close()
	if err := b.Open(context.Background(), o.ElectionID, o.Name, o.Voters, nil); err != nil {
		return State{}, err
	}
	for i := range o.Ballots {
		ballot := make([]byte, 64)
		_, _ = rand.Read(ballot)
		err := b.Apply(fsmpb.CommandType_COMMAND_CAST, &fsmpb.Cast{RequestId: fmt.Sprintf("r%d", i), VoterId: VoterID(i), Ballot: ballot})
		if err != nil {
			return State{}, err
		}
	}
	if o.Close {
		if err := b.Apply(fsmpb.CommandType_COMMAND_CLOSE_ELECTION, &fsmpb.Transition{}); err != nil {
			return State{}, err
		}
	}
	var sink bytes.Buffer
	if _, err := b.Snapshot(&sink); err != nil {
		return State{}, err
	}
	st := State{Stream: sink.Bytes()}
	if st.Index, st.Digest, err = b.FSM.Digest(); err != nil {
		return State{}, err
	}
	st.Counts, err = b.FSM.Counts()
	return st, err
}

// VoterID is the id of the i-th voter (from 0) of a built election.
func VoterID(i int) string { return fmt.Sprintf("v%06d", i) }

// Builder feeds commands to a state machine as raft would: numbered entries of term 1, stamped
// one second apart, as the organizer at a documentation address. Its state machine syncs every
// transaction, as a node's does.
type Builder struct {
	FSM   *fsm.FSM
	index uint64
}

// NewBuilder creates a keyring (under a fresh key-encryption key) and a state machine in dir,
// which must be empty or absent.
func NewBuilder(dir string) (*Builder, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	kek, err := keyring.GenerateKEK("teststate")
	if err != nil {
		return nil, err
	}
	kr, err := keyring.Create(filepath.Join(dir, "keyring"), kek)
	if err != nil {
		return nil, err
	}
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), kr, nil)
	if err != nil {
		return nil, err
	}
	return &Builder{FSM: f}, nil
}

// Close closes the state machine.
func (b *Builder) Close() error { return b.FSM.Close() }

// Open creates the election, imports voters voters (VoterID(0) ...) and opens it. progress,
// if set, is told how many voters are in.
func (b *Builder) Open(ctx context.Context, electionID, name string, voters int, progress func(done int)) error {
	if err := b.Apply(fsmpb.CommandType_COMMAND_CREATE_ELECTION, &fsmpb.CreateElection{ElectionId: electionID, Name: name}); err != nil {
		return err
	}
	if err := b.ImportVoters(ctx, 0, voters, progress); err != nil {
		return err
	}
	return b.Apply(fsmpb.CommandType_COMMAND_OPEN_ELECTION, &fsmpb.Transition{})
}

// ImportVoters imports voters VoterID(from) ... VoterID(from+n-1) in commands of at most
// fsm.MaxVotersPerCommand voters; progress, if set, is told how many are in. It stops when ctx
// ends.
func (b *Builder) ImportVoters(ctx context.Context, from, n int, progress func(done int)) error {
	for start := from; start < from+n; start += fsm.MaxVotersPerCommand {
		if err := ctx.Err(); err != nil {
			return err
		}
		var roll []*fsmpb.VoterRecord
		for i := start; i < min(from+n, start+fsm.MaxVotersPerCommand); i++ {
			id := VoterID(i)
			roll = append(roll, &fsmpb.VoterRecord{VoterId: id, Name: "Voter " + id, Email: id + "@example.org"})
		}
		if err := b.Apply(fsmpb.CommandType_COMMAND_IMPORT_VOTERS, &fsmpb.ImportVoters{Voters: roll}); err != nil {
			return err
		}
		if progress != nil {
			progress(start - from + len(roll))
		}
	}
	return nil
}

// CastBatches casts one random ballot of ballotSize bytes for voters VoterID(from) ...
// VoterID(from+n-1), as a leader under load would: CAST_BATCH entries of fsm.MaxCastsPerBatch
// casts (fewer when MaxCastBatchBytes says so), each shuffled from crypto/rand and stamped,
// entriesPerApply of them applied together as raft hands a busy follower several entries.
// progress, if set, is told how many casts are applied. It stops when ctx ends.
func (b *Builder) CastBatches(ctx context.Context, from, n, ballotSize, entriesPerApply int, progress func(done int)) error {
	perBatch := max(1, min(fsm.MaxCastsPerBatch, fsm.MaxCastBatchBytes/(ballotSize+64)))
	entriesPerApply = max(1, entriesPerApply)
	done := 0
	for done < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		var logs []*raft.Log
		var sizes []int
		for len(logs) < entriesPerApply && done+sum(sizes) < n {
			k := min(perBatch, n-done-sum(sizes))
			l, err := b.castBatchEntry(from+done+sum(sizes), k, ballotSize)
			if err != nil {
				return err
			}
			logs, sizes = append(logs, l), append(sizes, k)
		}
		for i, r := range b.FSM.ApplyBatch(logs) {
			resp, ok := r.(*fsmpb.Response)
			if !ok {
				return fmt.Errorf("teststate: CAST_BATCH answered %T", r)
			}
			answers, err := fsm.CastBatchResponses(resp, sizes[i])
			if err != nil {
				return err
			}
			for _, a := range answers {
				if err := fsm.ResponseError(a); err != nil {
					return fmt.Errorf("teststate: a cast of a batch: %w", err)
				}
			}
		}
		done += sum(sizes)
		if progress != nil {
			progress(done)
		}
	}
	return nil
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// castBatchEntry builds the raft entry of one CAST_BATCH for voters from ... from+n-1.
func (b *Builder) castBatchEntry(from, n, ballotSize int) (*raft.Log, error) {
	casts := make([]*fsmpb.Command, n)
	actor := &fsmpb.Actor{Principal: "client:app", Ip: "192.0.2.7"}
	for i := range casts {
		ballot := make([]byte, ballotSize)
		_, _ = rand.Read(ballot)
		id := VoterID(from + i)
		c, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_CAST, &fsmpb.Cast{RequestId: "r-" + id, VoterId: id, Ballot: ballot})
		if err != nil {
			return nil, err
		}
		c.Actor = actor
		casts[i] = c
	}
	c, _, err := fsm.NewCastBatch(casts, rand.Reader)
	if err != nil {
		return nil, err
	}
	return b.entry(c)
}

// Apply applies one command as one raft entry and returns the state machine's refusal, if any.
func (b *Builder) Apply(typ fsmpb.CommandType, payload proto.Message) error {
	c, err := fsm.NewCommand(typ, payload)
	if err != nil {
		return err
	}
	c.Actor = &fsmpb.Actor{Principal: "client:organizer", Ip: "192.0.2.7"}
	l, err := b.entry(c)
	if err != nil {
		return err
	}
	resp, ok := b.FSM.Apply(l).(*fsmpb.Response)
	if !ok {
		return fmt.Errorf("teststate: %s answered no response", typ)
	}
	if err := fsm.ResponseError(resp); err != nil {
		return fmt.Errorf("teststate: %s: %w", typ, err)
	}
	return nil
}

// entry stamps and encodes c as the next raft entry.
func (b *Builder) entry(c *fsmpb.Command) (*raft.Log, error) {
	b.index++
	if err := fsm.Stamp(c, time.Unix(1700000000+int64(b.index), 0), rand.Reader); err != nil {
		return nil, err
	}
	data, err := fsm.Encode(c)
	if err != nil {
		return nil, err
	}
	return &raft.Log{Index: b.index, Term: 1, Type: raft.LogCommand, Data: data}, nil
}

// Snapshot streams the state machine's snapshot (the stream a node persists and a backup
// seals) to w and returns its applied index.
func (b *Builder) Snapshot(w io.Writer) (uint64, error) {
	snap, err := b.FSM.FullSnapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Release()
	sink := &writerSink{w: w}
	if err := snap.Persist(sink); err != nil {
		return 0, err
	}
	if sink.canceled {
		return 0, errors.New("teststate: the snapshot was canceled")
	}
	return b.FSM.AppliedIndex(), nil
}

// writerSink is a raft snapshot sink that writes to w.
type writerSink struct {
	w        io.Writer
	canceled bool
}

func (s *writerSink) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *writerSink) ID() string                  { return "teststate" }
func (s *writerSink) Cancel() error               { s.canceled = true; return nil }
func (s *writerSink) Close() error                { return nil }

var _ raft.SnapshotSink = (*writerSink)(nil)
