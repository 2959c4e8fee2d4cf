package fsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// memorySink is a raft.SnapshotSink in memory.
type memorySink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memorySink) ID() string    { return "test" }
func (s *memorySink) Cancel() error { s.cancelled = true; return nil }
func (s *memorySink) Close() error  { s.closed = true; return nil }

// snapshotBytes persists a full snapshot of f.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	return persisted(t, f.FullSnapshot)
}

// persisted persists the snapshot take returns.
func persisted(t testing.TB, take func() (raft.FSMSnapshot, error)) []byte {
	t.Helper()
	snap, err := take()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

func persist(t testing.TB, f *FSM) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))
}

func TestSnapshotRestoreGivesTheSameState(t *testing.T) {
	src := newHarness(t)
	src.openElection("alice", "bob", "carol")
	src.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	src.mustApply(typeCast, cast("r2", "bob", "ballot-B"))
	dst := openHarness(t, t.TempDir()+"/state.db", newSealer(t, 3))
	dst.openElection("zoe") // state the restore must discard
	if err := dst.f.Restore(persist(t, src.f)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src.digest(), dst.digest()) || src.counts() != dst.counts() {
		t.Fatalf("restored state differs: %+v vs %+v", src.counts(), dst.counts())
	}
	if dst.f.AppliedIndex() != src.f.AppliedIndex() {
		t.Fatalf("applied index after restore = %d, want %d", dst.f.AppliedIndex(), src.f.AppliedIndex())
	}
	if voted, _, _ := dst.f.HasVoted("zoe"); voted {
		t.Fatal("old state survived the restore")
	}
	// Both replicas go on identically, and a retried cast still finds its first receipt.
	dst.last = src.last
	for _, h := range []*harness{src, dst} {
		if r := h.mustApply(typeCast, cast("r1", "alice", "ballot-A")).GetCast(); !r.Replayed {
			t.Fatal("retry after restore was not recognized")
		}
		h.mustApply(typeCast, cast("r3", "carol", "ballot-C"))
	}
	if !bytes.Equal(src.digest(), dst.digest()) {
		t.Fatal("replicas diverged after the restore")
	}
	// The restored file survives a restart.
	dst.f.Close()
	again := openHarness(t, dst.path, dst.f.sealer)
	if !bytes.Equal(again.digest(), src.digest()) {
		t.Fatal("restored state lost at restart")
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	snap, err := h.f.FullSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	want := h.digest()
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A")) // applied while the snapshot is open
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	if err := dst.f.Restore(io.NopCloser(&sink.Buffer)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.digest(), want) {
		t.Fatal("the snapshot holds writes made after it was taken")
	}
}

func TestRestoreRefusesDamagedStreams(t *testing.T) {
	src := newHarness(t)
	src.openElection("alice")
	src.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	good := snapshotBytes(t, src.f)
	flip := func(off int) []byte { b := bytes.Clone(good); b[off] ^= 0x01; return b }
	cases := map[string][]byte{
		"empty":            nil,
		"header only":      good[:20],
		"truncated middle": good[:len(good)/2],
		"no checksum":      good[:len(good)-32],
		"short checksum":   good[:len(good)-1],
		"flipped value":    flip(len(good) / 2),
		"flipped index":    flip(19),
		"flipped checksum": flip(len(good) - 1),
		"wrong magic":      flip(0),
		"trailing bytes":   append(bytes.Clone(good), 0),
	}
	dst := newHarness(t)
	dst.openElection("zoe")
	want := dst.digest()
	for name, stream := range cases {
		t.Run(name, func(t *testing.T) {
			err := dst.f.Restore(io.NopCloser(bytes.NewReader(stream)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore of a damaged stream: %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(dst.digest(), want) {
				t.Fatal("a refused restore changed the state")
			}
			if _, err := os.Stat(dst.path + restoreSuffix); !os.IsNotExist(err) {
				t.Fatal("a refused restore left its unfinished database")
			}
		})
	}
}

// TestRestoreRefusesInconsistentState feeds a well-framed stream whose counters lie.
func TestRestoreRefusesInconsistentState(t *testing.T) {
	var buf bytes.Buffer
	src := newHarness(t)
	src.openElection("alice")
	err := src.f.view(func(tx *bolt.Tx) error {
		return writeSnapshot(&buf, tx, lyingSealer{src.f.sealer}, src.f.AppliedIndex())
	})
	if err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	if err := dst.f.Restore(io.NopCloser(&buf)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of inconsistent counters: %v", err)
	}
}

// lyingSealer opens the counters record as if there were 7 voters.
type lyingSealer struct{ Sealer }

func (s lyingSealer) Open(aad, ct []byte) ([]byte, error) {
	if string(aad) == "meta/counters" {
		return marshalOptions.Marshal(&fsmpb.Counters{Voters: 7})
	}
	return s.Sealer.Open(aad, ct)
}

func TestReadsDuringRestore(t *testing.T) {
	src := newHarness(t)
	src.openElection("alice")
	stream := snapshotBytes(t, src.f)
	dst := newHarness(t)
	dst.openElection("alice")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := dst.f.Digest(); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	for range 20 {
		if err := dst.f.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a read failed during restore: %v", err)
	default:
	}
}

// TestGoldenSnapshotBytes pins the snapshot format: a node must restore the snapshots of
// the version before it, so an accidental change of the stream must fail here.
func TestGoldenSnapshotBytes(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	got := snapshotBytes(t, h.f)
	wantBytes := readGolden(t, "testdata/snapshot_v3_box_slices.hex", got)
	if !bytes.Equal(got, wantBytes) {
		t.Fatal("the snapshot stream of a fixed state changed")
	}
	restored := newHarness(t)
	if err := restored.f.Restore(io.NopCloser(bytes.NewReader(wantBytes))); err != nil {
		t.Fatalf("golden snapshot does not restore: %v", err)
	}
	if !bytes.Equal(restored.digest(), h.digest()) {
		t.Fatal("golden snapshot restores to another state")
	}
}

// TestRestoresFirstVersionSnapshot restores a snapshot written before the journal, the
// accounts and the scrutins existed: the state comes back whole and takes new commands.
func TestRestoresFirstVersionSnapshot(t *testing.T) {
	old := readGolden(t, "testdata/snapshot_v1.hex", nil)
	h := newHarness(t)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatalf("first-version snapshot does not restore: %v", err)
	}
	if c := h.counts(); c.Voters != 2 || c.Ballots != 1 || c.Phase != PhaseOpen {
		t.Fatalf("restored counts = %+v", c)
	}
	before, err := h.f.VerifyRegister(nil)
	if err != nil {
		t.Fatalf("register of a first-version state: %v", err)
	}
	h.last = h.f.AppliedIndex()
	h.mustApply(typeCast, cast("r2", "bob", "ballot-B"))
	h.mustApply(typeClose, &fsmpb.Transition{})
	if rep, err := h.f.VerifyRegister(nil); err != nil || rep.Entries != before.Entries+2 {
		t.Fatalf("register after closing: %+v, %v", rep, err)
	}
}

// TestRestoresJournalSnapshot restores a snapshot of the version that kept a journal beside
// the register: the journal's records are skipped, the register and the rest come back whole,
// and the restored database has no journal bucket.
func TestRestoresJournalSnapshot(t *testing.T) {
	old := readGolden(t, "testdata/snapshot_v1_journal.hex", nil)
	if !bytes.Contains(old, []byte("journal")) {
		t.Fatal("the golden stream holds no journal records")
	}
	h := newHarness(t)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatalf("a snapshot with a journal does not restore: %v", err)
	}
	if c := h.counts(); c.Voters != 2 || c.Ballots != 1 || c.Phase != PhaseOpen {
		t.Fatalf("restored counts = %+v", c)
	}
	before, err := h.f.VerifyRegister(nil)
	if err != nil || before.Entries == 0 {
		t.Fatalf("restored register: %+v, %v", before, err)
	}
	if bytes.Contains(snapshotBytes(t, h.f), []byte("journal")) {
		t.Fatal("the journal survived the restore")
	}
	h.last = h.f.AppliedIndex()
	h.mustApply(typeClose, &fsmpb.Transition{})
	if rep, err := h.f.VerifyRegister(nil); err != nil || rep.Entries != before.Entries+1 {
		t.Fatalf("register after closing: %+v, %v", rep, err)
	}
}

// readGolden reads a hex golden file, rewriting it with got first under -update (got nil: never).
func readGolden(t *testing.T, path string, got []byte) []byte {
	t.Helper()
	if *updateGolden && got != nil {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(want)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Raft's snapshots are references: a few bytes naming the applied index. Restoring one
// changes nothing when the database has reached that index, and is refused beyond it.
func TestSnapshotIsAReferenceToTheDatabase(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v (closed %v)", err, sink.closed)
	}
	snap.Release()
	applied := h.f.AppliedIndex()
	index, ok := h.f.SnapshotReference(sink.Bytes())
	if !ok || index != applied || sink.Len() != referenceSize {
		t.Fatalf("reference of %d bytes names index %d (%v), want %d", sink.Len(), index, ok, applied)
	}
	if _, ok := h.f.SnapshotReference(snapshotBytes(t, h.f)); ok {
		t.Fatal("a full snapshot passes for a reference")
	}
	want, db := h.digest(), h.f.db
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("restoring a reference the database holds: %v", err)
	}
	if h.f.db != db || !bytes.Equal(h.digest(), want) {
		t.Fatal("restoring a reference the database holds rebuilt or changed it")
	}
	err = h.f.Restore(io.NopCloser(bytes.NewReader(referenceBytes(t, applied+1))))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "full copy") {
		t.Fatalf("restoring a reference beyond the database: %v", err)
	}
	if h.f.db != db || !bytes.Equal(h.digest(), want) {
		t.Fatal("a refused reference changed the state")
	}
}

// ExpandSnapshot gives the full state with its exact size, and refuses an index the
// database has not reached.
func TestExpandSnapshotGivesTheFullStateAndItsSize(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	applied := h.f.AppliedIndex()
	if _, _, err := h.f.ExpandSnapshot(applied + 1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("expanding beyond the applied index: %v", err)
	}
	size, rc, err := h.f.ExpandSnapshot(applied)
	if err != nil {
		t.Fatal(err)
	}
	full, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(full)) != size || !bytes.Equal(full, snapshotBytes(t, h.f)) {
		t.Fatalf("expanded %d bytes (%v), announced %d, same as a full snapshot: %v", len(full), err, size, bytes.Equal(full, snapshotBytes(t, h.f)))
	}
	dst := newHarness(t)
	if err := dst.f.Restore(io.NopCloser(bytes.NewReader(full))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.digest(), h.digest()) {
		t.Fatal("the expanded snapshot restores another state")
	}
}

// A reader closed before the end ends the read transaction: the database still closes.
func TestExpandSnapshotReleasesItsTransactionWhenClosedEarly(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	_, rc, err := h.f.ExpandSnapshot(h.f.AppliedIndex())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	closed := make(chan error, 1)
	go func() { closed <- h.f.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the state database does not close: the expanded snapshot kept its read transaction")
	}
}
