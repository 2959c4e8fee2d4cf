package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

const (
	typeCreate = fsmpb.CommandType_COMMAND_CREATE_ELECTION
	typeImport = fsmpb.CommandType_COMMAND_IMPORT_VOTERS
	typeOpen   = fsmpb.CommandType_COMMAND_OPEN_ELECTION
	typeClose  = fsmpb.CommandType_COMMAND_CLOSE_ELECTION
	typeCast   = fsmpb.CommandType_COMMAND_CAST
	typeNoop   = fsmpb.CommandType_COMMAND_NOOP
)

func TestCreateElection(t *testing.T) {
	h := newHarness(t)
	resp := h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "CSE 2026"})
	e := resp.GetElection()
	if e.Phase != PhaseDraft || e.CreatedAtUnixNano != stampTime(1).UnixNano() || e.Name != "CSE 2026" {
		t.Fatalf("created election = %v", e)
	}
	again := h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "renamed"})
	if again.GetElection().Name != "CSE 2026" || again.GetElection().CreatedAtUnixNano != e.CreatedAtUnixNano {
		t.Fatalf("retried create changed the election: %v", again.GetElection())
	}
	wantCode(t, h.apply(typeCreate, &fsmpb.CreateElection{ElectionId: "other"}), ErrWrongElection)
	reference := newHarness(t)
	reference.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "CSE 2026"})
	reference.mustApply(typeNoop, nil)
	reference.mustApply(typeNoop, nil)
	if !bytes.Equal(h.digest(), reference.digest()) {
		t.Fatal("a retried or refused create changed the state")
	}
}

func TestCreateElectionNeedsStamp(t *testing.T) {
	h := newHarness(t)
	c, _ := NewCommand(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	h.last++
	wantCode(t, h.applyLog(commandLog(h.last, encode(t, c))), ErrInvalid)
	c.StampedAtUnixNano = 1
	h.last++
	resp := h.applyLog(commandLog(h.last, encode(t, c)))
	wantCode(t, resp, ErrInvalid)
	if !strings.Contains(resp.Message, "index key") {
		t.Fatalf("message %q does not name the missing index key", resp.Message)
	}
	if _, _, err := h.f.Election(); !errors.Is(err, ErrNoElection) {
		t.Fatalf("unstamped create left an election: %v", err)
	}
}

func TestImportVoters(t *testing.T) {
	h := newHarness(t)
	wantCode(t, h.apply(typeImport, voters("a")), ErrNoElection)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	res := h.mustApply(typeImport, voters("a", "b", "c")).GetImport()
	if res.Imported != 3 || res.Unchanged != 0 || res.TotalVoters != 3 {
		t.Fatalf("first import = %v", res)
	}
	rectified := voters("a", "b", "d")
	rectified.Voters[1].Email = "new@example.org"
	res = h.mustApply(typeImport, rectified).GetImport()
	if res.Imported != 2 || res.Unchanged != 1 || res.TotalVoters != 4 {
		t.Fatalf("second import = %v, want b rectified, d added, a unchanged", res)
	}
	if c := h.counts(); c.Voters != 4 || c.Phase != PhaseDraft {
		t.Fatalf("counts = %+v", c)
	}
	wantCode(t, h.apply(typeImport, &fsmpb.ImportVoters{ElectionId: "other", Voters: voters("e").Voters}), ErrWrongElection)
	h.mustApply(typeOpen, &fsmpb.Transition{})
	wantCode(t, h.apply(typeImport, voters("e")), ErrWrongPhase)
	if c := h.counts(); c.Voters != 4 {
		t.Fatalf("refused imports changed the roll: %+v", c)
	}
}

func TestTransitions(t *testing.T) {
	steps := []struct {
		typ  fsmpb.CommandType
		want error
		msg  string
	}{
		{typeClose, ErrWrongPhase, "is draft, the command needs it open"},
		{typeOpen, nil, ""},
		{typeOpen, nil, ""}, // a retry
		{typeClose, nil, ""},
		{typeClose, nil, ""}, // a retry
		{typeOpen, ErrWrongPhase, "is closed, the command needs it draft"},
	}
	h := newHarness(t)
	wantCode(t, h.apply(typeOpen, &fsmpb.Transition{}), ErrNoElection)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	wantCode(t, h.apply(typeOpen, &fsmpb.Transition{ElectionId: "other"}), ErrWrongElection)
	var opened, closed int64
	for i, s := range steps {
		resp := h.apply(s.typ, &fsmpb.Transition{ElectionId: electionID})
		wantCode(t, resp, s.want)
		if !strings.Contains(resp.Message, s.msg) {
			t.Fatalf("step %d: message %q lacks %q", i, resp.Message, s.msg)
		}
		switch i {
		case 1:
			opened = stampTime(h.last).UnixNano()
		case 3:
			closed = stampTime(h.last).UnixNano()
		}
	}
	e, _, err := h.f.Election()
	if err != nil {
		t.Fatal(err)
	}
	if e.Phase != PhaseClosed || e.OpenedAtUnixNano != opened || e.ClosedAtUnixNano != closed {
		t.Fatalf("election = %v; want opened at the first OPEN (%d), closed at the first CLOSE (%d)", e, opened, closed)
	}
}

func TestCastRecordsEmargementAndBallot(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	receipt := h.mustApply(typeCast, cast("req-1", "alice", "ballot-A")).GetCast()
	if receipt.Replayed || receipt.EmargedAtUnixNano != stampTime(h.last).UnixNano() || len(receipt.Fingerprint) != 32 {
		t.Fatalf("receipt = %v", receipt)
	}
	if c := h.counts(); c.Emargements != 1 || c.Ballots != 1 || c.Phase != PhaseOpen {
		t.Fatalf("counts = %+v", c)
	}
	voted, at, err := h.f.HasVoted("alice")
	if err != nil || !voted || at != receipt.EmargedAtUnixNano {
		t.Fatalf("HasVoted(alice) = %v %d %v", voted, at, err)
	}
	if voted, _, _ := h.f.HasVoted("bob"); voted {
		t.Fatal("bob has voted without casting")
	}
	var fps [][]byte
	if err := h.f.ForEachFingerprint(func(fp []byte) error { fps = append(fps, fp); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(fps) != 1 || !bytes.Equal(fps[0], receipt.Fingerprint) {
		t.Fatalf("box fingerprints = %x", fps)
	}
}

func TestCastRefusals(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	h.mustApply(typeImport, voters("alice", "bob", "carol"))
	wantCode(t, h.apply(typeCast, cast("r0", "alice", "x")), ErrWrongPhase)
	h.mustApply(typeOpen, &fsmpb.Transition{})
	first := h.mustApply(typeCast, cast("r1", "alice", "ballot-A")).GetCast()
	cases := []struct {
		name    string
		payload *fsmpb.Cast
		want    error
	}{
		{"unknown voter", cast("r2", "mallory", "ballot-M"), ErrUnknownVoter},
		{"empty ballot", cast("r3", "bob", ""), ErrInvalid},
		{"ballot too large", cast("r4", "bob", strings.Repeat("x", MaxBallotSize+1)), ErrBallotTooLarge},
		{"missing request id", cast("", "bob", "ballot-B"), ErrInvalid},
		{"other election", &fsmpb.Cast{ElectionId: "x", RequestId: "r5", VoterId: "bob", Ballot: []byte("b")}, ErrWrongElection},
		{"second request", cast("r6", "alice", "ballot-A2"), ErrAlreadyVoted},
		{"same request, other ballot", cast("r1", "alice", "ballot-A2"), ErrAlreadyVoted},
		{"ballot copied by another voter", cast("r7", "bob", "ballot-A"), ErrDuplicateBallot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.counts()
			wantCode(t, h.apply(typeCast, tc.payload), tc.want)
			after := h.counts()
			after.Index = before.Index
			if after != before {
				t.Fatalf("refused cast changed counts: %+v -> %+v", before, after)
			}
		})
	}
	if voted, _, _ := h.f.HasVoted("bob"); voted {
		t.Fatal("a refused cast left an émargement for bob")
	}
	h.mustApply(typeClose, &fsmpb.Transition{})
	wantCode(t, h.apply(typeCast, cast("r8", "carol", "ballot-C")), ErrWrongPhase)
	retry := h.mustApply(typeCast, cast("r1", "alice", "ballot-A")).GetCast()
	if !retry.Replayed || retry.EmargedAtUnixNano != first.EmargedAtUnixNano {
		t.Fatalf("retry after close = %v, want the first receipt %v", retry, first)
	}
}

func TestCastRetryReturnsFirstReceipt(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	first := h.mustApply(typeCast, cast("req-1", "alice", "ballot-A")).GetCast()
	before := h.counts()
	retry := h.mustApply(typeCast, cast("req-1", "alice", "ballot-A")).GetCast()
	if !retry.Replayed || !bytes.Equal(retry.Fingerprint, first.Fingerprint) || retry.EmargedAtUnixNano != first.EmargedAtUnixNano {
		t.Fatalf("retry receipt = %v, first = %v", retry, first)
	}
	if after := h.counts(); after.Ballots != before.Ballots || after.Emargements != before.Emargements {
		t.Fatalf("a retry added a ballot: %+v -> %+v", before, after)
	}
}

// TestEmargementIsUnlinkable opens the stored records: the émargement holds a time and a
// check, never the fingerprint; the box holds the ballot alone.
func TestEmargementIsUnlinkable(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	receipt := h.mustApply(typeCast, cast("req-1", "alice", "ballot-A")).GetCast()
	err := h.f.view(func(tx *bolt.Tx) error {
		plain, ok, err := getOpened(tx, h.f.sealer, bucketEmargement, voterKey(fixedIndexKey, "alice"))
		if err != nil || !ok {
			t.Fatalf("émargement of alice: found=%v err=%v", ok, err)
		}
		if bytes.Contains(plain, receipt.Fingerprint) || bytes.Contains(plain, []byte("ballot-A")) {
			t.Fatal("the émargement holds the fingerprint or the ballot")
		}
		em := &fsmpb.EmargementRecord{}
		if err := proto.Unmarshal(plain, em); err != nil {
			t.Fatal(err)
		}
		if want := castCheck(fixedIndexKey, "req-1", receipt.Fingerprint); !bytes.Equal(em.Check, want) {
			t.Fatal("the check is not bound to request id and fingerprint")
		}
		ballot, _, err := getOpened(tx, h.f.sealer, bucketBox, receipt.Fingerprint)
		if err != nil || string(ballot) != "ballot-A" {
			t.Fatalf("box value = %q, %v; want the ballot alone", ballot, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestApplyBatchRefusalLeavesNoTrace(t *testing.T) {
	batched, reference := newHarness(t), newHarness(t)
	batched.openElection("alice", "bob", "carol")
	reference.openElection("alice", "bob", "carol")
	logs := []*raft.Log{
		batched.entry(typeCast, cast("r1", "alice", "ballot-A")),
		batched.entry(typeCast, cast("r2", "bob", "ballot-A")), // duplicate: refused
		batched.entry(typeCast, cast("r3", "carol", "ballot-C")),
		batched.entry(typeImport, voters("dave")), // wrong phase: refused
	}
	responses := batched.f.ApplyBatch(logs)
	wants := []error{nil, ErrDuplicateBallot, nil, ErrWrongPhase}
	for i, want := range wants {
		wantCode(t, responses[i].(*fsmpb.Response), want)
	}
	if got := batched.f.AppliedIndex(); got != logs[3].Index {
		t.Fatalf("applied index = %d, want the last of the batch %d", got, logs[3].Index)
	}
	reference.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	reference.mustApply(typeNoop, nil)
	reference.mustApply(typeCast, cast("r3", "carol", "ballot-C"))
	reference.mustApply(typeNoop, nil)
	if !bytes.Equal(batched.digest(), reference.digest()) {
		t.Fatal("the refused commands of the batch left a trace")
	}
	if voted, _, _ := batched.f.HasVoted("bob"); voted {
		t.Fatal("bob has an émargement from a refused cast")
	}
}

func TestRestartKeepsStateAndSkipsReplayedEntries(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	var replay []*raft.Log
	replay = append(replay, h.entry(typeImport, voters("bob")))
	replay = append(replay, h.entry(typeCast, cast("r1", "alice", "ballot-A")))
	h.f.ApplyBatch(replay)
	before, digest := h.counts(), h.digest()
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := openHarness(t, h.path, h.f.sealer)
	if h2.f.AppliedIndex() != before.Index {
		t.Fatalf("applied index after restart = %d, want %d", h2.f.AppliedIndex(), before.Index)
	}
	// Raft replays entries after its last snapshot; a rectification replayed here would
	// count twice if it were applied again.
	changed := h.entry(typeImport, voters("bob"))
	changed.Index = replay[0].Index
	for _, l := range []*raft.Log{changed, replay[1]} {
		if resp := h2.applyLog(l); !strings.Contains(resp.Message, "already applied") {
			t.Fatalf("replayed entry %d answered %v", l.Index, resp)
		}
	}
	if !bytes.Equal(h2.digest(), digest) || h2.counts() != before {
		t.Fatal("replayed entries changed the state")
	}
}

func TestUnknownCommandType(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		h, reference := newHarness(t), newHarness(t)
		h.openElection("alice")
		reference.openElection("alice")
		c := command(t, fsmpb.CommandType(99), &fsmpb.Cast{RequestId: "r", VoterId: "alice", Ballot: []byte("b")}, 0)
		if ignore {
			c.Flags = uint32(fsmpb.CommandFlag_FLAG_IGNORE_UNKNOWN)
		}
		h.last++
		resp := h.applyLog(commandLog(h.last, encode(t, c)))
		if ignore {
			wantCode(t, resp, nil)
		} else {
			wantCode(t, resp, ErrUnknownCommand)
		}
		reference.mustApply(typeNoop, nil)
		if h.f.AppliedIndex() != h.last || !bytes.Equal(h.digest(), reference.digest()) {
			t.Fatalf("ignore=%v: unknown type changed the state or did not advance the index", ignore)
		}
	}
}

func TestGarbageAndNonCommandEntries(t *testing.T) {
	h := newHarness(t)
	h.last++
	wantCode(t, h.applyLog(commandLog(h.last, []byte{0xff, 0x00, 0x13})), ErrInvalid)
	h.last++
	config := &raft.Log{Index: h.last, Type: raft.LogConfiguration, Data: []byte("config")}
	if resp := h.f.ApplyBatch([]*raft.Log{config})[0]; resp != nil {
		t.Fatalf("configuration entry answered %v", resp)
	}
	if h.f.AppliedIndex() != 2 {
		t.Fatalf("applied index = %d, want 2", h.f.AppliedIndex())
	}
}

func TestDeterminism(t *testing.T) {
	a := newHarness(t)
	b := openHarness(t, t.TempDir()+"/other.db", newSealer(t, 2)) // another key: same logical state
	for _, h := range []*harness{a, b} {
		h.openElection("alice", "bob")
		h.apply(typeCast, cast("r1", "alice", "ballot-A"))
		h.apply(typeCast, cast("r2", "bob", "ballot-A"))
		h.apply(typeClose, &fsmpb.Transition{})
	}
	if !bytes.Equal(a.digest(), b.digest()) {
		t.Fatal("two replicas fed the same entries disagree")
	}
}

func TestObserver(t *testing.T) {
	h := newHarness(t)
	var seen []string
	h.f.SetObserver(func(typ fsmpb.CommandType, code fsmpb.ResponseCode) {
		seen = append(seen, typ.String()+"="+code.String())
	})
	h.apply(typeOpen, &fsmpb.Transition{})
	h.f.SetObserver(nil)
	h.apply(typeNoop, nil)
	if len(seen) != 1 || seen[0] != "COMMAND_OPEN_ELECTION=RESPONSE_NO_ELECTION" {
		t.Fatalf("observer saw %v", seen)
	}
}

func TestReadsAfterClose(t *testing.T) {
	h := newHarness(t)
	h.f.Close()
	if _, err := h.f.Counts(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Counts after Close: %v", err)
	}
	if _, err := h.f.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
}

// TestApplyBatchSplitsLargeBatches feeds a replica that fell behind an import all at once:
// it commits in several transactions (the observer sees the applied index move within the
// batch), and ends in the state of a replica that applied the same entries one by one.
func TestApplyBatchSplitsLargeBatches(t *testing.T) {
	batched, reference := newHarness(t), newHarness(t)
	var logs []*raft.Log
	for _, h := range []*harness{batched, reference} {
		h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "CSE 2026"})
	}
	padding := strings.Repeat("x", 200)
	for page := range 10 {
		p := &fsmpb.ImportVoters{}
		for i := range 2000 {
			id := fmt.Sprintf("voter-%d-%d", page, i)
			p.Voters = append(p.Voters, &fsmpb.VoterRecord{VoterId: id, Name: "Name of " + id, Email: id + "@example.org", Composante: padding, Secteur: padding})
		}
		logs = append(logs, batched.entry(typeImport, p))
	}
	if size := len(logs[0].Data) * len(logs); size <= 2*maxTxBytes {
		t.Fatalf("entries of %d bytes in all fit in two transactions of %d", size, maxTxBytes)
	}
	var seen []uint64
	batched.f.SetObserver(func(fsmpb.CommandType, fsmpb.ResponseCode) { seen = append(seen, batched.f.AppliedIndex()) })
	for i, resp := range batched.f.ApplyBatch(logs) {
		wantCode(t, resp.(*fsmpb.Response), nil)
		if got := resp.(*fsmpb.Response).GetImport().GetImported(); got != 2000 {
			t.Fatalf("entry %d imported %d voters", i, got)
		}
	}
	if seen[0] == logs[len(logs)-1].Index || seen[0] < logs[0].Index {
		t.Fatalf("first commit left the applied index at %d: the batch was one transaction (entries %d..%d)",
			seen[0], logs[0].Index, logs[len(logs)-1].Index)
	}
	if got := batched.f.AppliedIndex(); got != logs[len(logs)-1].Index {
		t.Fatalf("applied index %d, want %d", got, logs[len(logs)-1].Index)
	}
	for _, l := range logs {
		wantCode(t, reference.applyLog(l), nil)
	}
	_, want, err := reference.f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := batched.f.Digest(); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("split batch and entries one by one disagree (err %v)", err)
	}
}
