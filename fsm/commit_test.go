package fsm

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// crashImage copies the database file as a crash would leave it, with no commit running, and
// returns the copy's path.
func (h *harness) crashImage() string {
	h.t.Helper()
	h.f.commitMu.Lock()
	b, err := os.ReadFile(h.path)
	h.f.commitMu.Unlock()
	if err != nil {
		h.t.Fatal(err)
	}
	path := filepath.Join(h.t.TempDir(), "crashed.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// durableIndex is the applied index a crash now would leave in the database file.
func (h *harness) durableIndex() uint64 {
	h.t.Helper()
	return openHarness(h.t, h.crashImage(), h.f.sealer).f.AppliedIndex()
}

// Applied entries wait in the write transaction, every read sees them, and a read commits
// them first.
func TestAppliedEntriesAreReadBeforeTheyCommit(t *testing.T) {
	h := newHarness(t)
	h.f.commitDelay = time.Hour
	h.openElection("alice", "bob")
	h.f.commit()
	before := h.durableIndex()
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	if got := h.durableIndex(); got != before {
		t.Fatalf("the cast was committed at once (file at index %d, was %d): applies do not share a transaction", got, before)
	}
	if c := h.counts(); c.Ballots != 1 || c.Index != h.f.AppliedIndex() {
		t.Fatalf("a read saw %d ballots at index %d, want 1 at %d", c.Ballots, c.Index, h.f.AppliedIndex())
	}
	if got := h.durableIndex(); got != h.f.AppliedIndex() {
		t.Fatalf("after a read the file is at index %d, want %d", got, h.f.AppliedIndex())
	}
}

// With no read and no further entry, what was applied commits within the delay.
func TestAppliedEntriesCommitWithinTheDelay(t *testing.T) {
	h := newHarness(t)
	h.f.commitDelay = 20 * time.Millisecond
	h.openElection("alice")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	want := h.f.AppliedIndex()
	deadline := time.Now().Add(10 * time.Second)
	for h.durableIndex() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the file stayed at index %d, the state machine applied %d", h.durableIndex(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A write transaction holding maxTxBytes of entries commits at once, which bounds the dirty
// pages a node holds in memory.
func TestAFullWriteTransactionCommitsAtOnce(t *testing.T) {
	h := newHarness(t)
	h.f.commitDelay = time.Hour
	var logs []*raft.Log
	for size := 0; size < maxTxBytes; size += 1 << 20 {
		junk := make([]byte, 1<<20)
		rand.Read(junk)
		h.last++
		logs = append(logs, commandLog(h.last, junk)) // refused as garbage, recorded, counted
	}
	h.f.ApplyBatch(logs)
	if got := h.durableIndex(); got != h.last {
		t.Fatalf("after %d MiB of entries the file is at index %d, want %d", len(logs), got, h.last)
	}
}

// A crash loses the entries applied since the last commit; replaying them from the log, as
// raft does at restart, gives the same state.
func TestACrashBeforeTheCommitReplaysFromTheLog(t *testing.T) {
	h := newHarness(t)
	h.f.commitDelay = time.Hour
	h.openElection("alice", "bob", "carol")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	h.f.commit()
	logs := []*raft.Log{h.entry(typeCast, cast("r2", "bob", "ballot-B")), h.entry(typeCast, cast("r3", "carol", "ballot-C"))}
	h.f.ApplyBatch(logs)
	crashed := openHarness(t, h.crashImage(), h.f.sealer)
	if crashed.f.AppliedIndex() >= h.f.AppliedIndex() {
		t.Fatalf("the crash image is at index %d, the state machine applied %d: nothing was waiting", crashed.f.AppliedIndex(), h.f.AppliedIndex())
	}
	// Raft replays from its snapshot's index: the first entry here is one the file holds.
	crashed.f.ApplyBatch(append([]*raft.Log{commandLog(logs[0].Index-1, nil)}, logs...))
	if crashed.f.AppliedIndex() != h.f.AppliedIndex() || !bytes.Equal(crashed.digest(), h.digest()) {
		t.Fatalf("after replay: index %d, state equal %v; want index %d and the same state",
			crashed.f.AppliedIndex(), bytes.Equal(crashed.digest(), h.digest()), h.f.AppliedIndex())
	}
}

// A snapshot refers to the database at its applied index, so the database must hold it:
// raft compacts its log up to there.
func TestSnapshotCommitsWhatItRefersTo(t *testing.T) {
	h := newHarness(t)
	h.f.commitDelay = time.Hour
	h.openElection("alice")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	index, _ := h.f.SnapshotReference(persisted(t, h.f.Snapshot))
	if got := h.durableIndex(); got < index || index != h.f.AppliedIndex() {
		t.Fatalf("a snapshot refers to index %d (applied %d), the file holds %d", index, h.f.AppliedIndex(), got)
	}
}

// Phase follows what was applied, without a read, and survives a restart.
func TestPhaseFollowsTheAppliedEntries(t *testing.T) {
	h := newHarness(t)
	if p := h.f.Phase(); p != PhaseNone {
		t.Fatalf("phase before the election: %s", PhaseName(p))
	}
	h.openElection("alice")
	if p := h.f.Phase(); p != PhaseOpen {
		t.Fatalf("phase once opened: %s", PhaseName(p))
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if p := openHarness(t, h.path, h.f.sealer).f.Phase(); p != PhaseOpen {
		t.Fatalf("phase after a restart: %s", PhaseName(p))
	}
}

// The election the node's loops watch follows the applied entries without a read, so that
// watching it commits nothing early.
func TestLatestElectionIsReadWithoutACommit(t *testing.T) {
	h := newHarness(t)
	h.f.commitDelay = time.Hour
	if e := h.f.LatestElection(); e != nil {
		t.Fatalf("election before it is created: %v", e)
	}
	h.openElection("alice")
	h.f.commit()
	before := h.durableIndex()
	h.mustApply(typeClose, &fsmpb.Transition{})
	e := h.f.LatestElection()
	if e.GetPhase() != PhaseClosed || e.GetElectionId() != electionID {
		t.Fatalf("latest election after the close: %s %q", PhaseName(e.GetPhase()), e.GetElectionId())
	}
	if got := h.durableIndex(); got != before {
		t.Fatalf("reading the latest election committed the state database (file at index %d, was %d)", got, before)
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if e := openHarness(t, h.path, h.f.sealer).f.LatestElection(); e.GetPhase() != PhaseClosed {
		t.Fatalf("latest election after a restart: %s", PhaseName(e.GetPhase()))
	}
}
