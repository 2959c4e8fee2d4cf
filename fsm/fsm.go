package fsm

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/internal/failpoint"
)

const (
	// openTimeout bounds the wait for the file lock held by another process.
	openTimeout = 5 * time.Second
	// initialMmapSize makes remaps rare: a remap waits for every read transaction, including
	// a snapshot being persisted and the integrity check walking the box, and every apply
	// waits for the remap. A million-voter election's database passes 2 GiB while voters
	// cast; above 1 GiB bbolt grows its mapping 1 GiB at a time. The mapping reserves address
	// space only: pages become resident as they are read, whatever its size.
	initialMmapSize = min(8<<30, math.MaxInt)
	// restoreSuffix names the database being built by Restore, next to the live one.
	restoreSuffix = ".restore"
)

// Observer is told the type and outcome of every applied command.
// It runs on the apply path: it must be quick and must not call back into the FSM.
type Observer func(t fsmpb.CommandType, code fsmpb.ResponseCode)

// FSM is the raft state machine of one election over an encrypted bbolt database.
// Apply, ApplyBatch and Restore are serialized by applyMu; db is swapped by Restore under
// mu, which readers hold for the length of their read transaction. Applies share one write
// transaction until it commits (commit.go); commitMu guards it, and is never held while
// waiting for mu.
type FSM struct {
	path     string
	sealer   Sealer
	logger   *slog.Logger
	noSync   bool // tests only: skips fsync
	applyMu  sync.Mutex
	mu       sync.RWMutex
	db       *bolt.DB
	applied  atomic.Uint64
	summary  atomic.Pointer[summary] // as of applied
	observer atomic.Pointer[Observer]

	commitMu     sync.Mutex
	commitDelay  time.Duration // the constant commitDelay; tests change it
	pending      *bolt.Tx      // applied entries not committed yet
	pendingBytes int           // their size in the log
	commitTimer  *time.Timer
}

var _ raft.BatchingFSM = (*FSM)(nil)

// summary is what the node asks of the state after every apply; kept in memory, since a read
// commits what waits first. The election is the one the batch read and wrote: nothing changes
// it once stored.
type summary struct {
	election      *fsmpb.ElectionState // nil before CREATE_ELECTION
	outboxPending uint64
}

// commitPoint fails the state database's commit in builds with failpoints (a failed fsync,
// a full disk); it is compiled out otherwise.
var commitPoint = failpoint.New("", failpoint.FSMCommit)

// Open opens the state database at path, creating it if missing. An existing file is
// first checked read-only (bbolt consistency, values open with s), so a wrong key or a
// corrupt file is refused with nothing written.
func Open(path string, s Sealer, logger *slog.Logger) (*FSM, error) {
	return open(path, s, logger, false)
}

func open(path string, s Sealer, logger *slog.Logger, noSync bool) (*FSM, error) {
	if s == nil {
		return nil, errors.New("fsm: open state database: no sealer")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{path: path, sealer: s, logger: logger, noSync: noSync, commitDelay: commitDelay}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("fsm: create directory of %s: %w", path, err)
	}
	// A restore that crashed before its rename left only this unfinished copy.
	if err := os.Remove(path + restoreSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fsm: remove unfinished restore: %w", err)
	}
	if err := verifyExisting(path, s); err != nil {
		return nil, err
	}
	db, index, sum, err := f.openReadWrite(path)
	if err != nil {
		return nil, err
	}
	f.db = db
	f.applied.Store(index)
	f.summary.Store(sum)
	logger.Info("state database opened", "path", path, "applied_index", index)
	return f, nil
}

func (f *FSM) boltOptions(readOnly bool) *bolt.Options {
	o := &bolt.Options{
		Timeout:      openTimeout,
		FreelistType: bolt.FreelistMapType,
		ReadOnly:     readOnly,
		NoSync:       f.noSync,
	}
	if !readOnly {
		o.InitialMmapSize = initialMmapSize
	}
	return o
}

// openReadWrite opens the database for applying, creating the buckets and a sealed
// applied index of 0 on a new file so that a wrong key is caught from the first restart. It
// returns the applied index and the summary of the state.
func (f *FSM) openReadWrite(path string) (*bolt.DB, uint64, *summary, error) {
	db, err := openBolt(path, f.boltOptions(false))
	if err != nil {
		return nil, 0, nil, err
	}
	var index uint64
	sum := &summary{}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := createBuckets(tx); err != nil {
			return err
		}
		if tx.Bucket(bucketMeta).Get(keyAppliedIndex) == nil {
			return writeAppliedIndex(tx, f.sealer, 0)
		}
		if index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		e, err := readElection(tx, f.sealer)
		if err != nil {
			return err
		}
		c, err := readCounters(tx, f.sealer)
		sum = &summary{election: e, outboxPending: c.GetOutboxPending()}
		return err
	})
	if err != nil {
		db.Close()
		return nil, 0, nil, fmt.Errorf("fsm: initialize state database %s: %w", path, err)
	}
	return db, index, sum, nil
}

// Close commits what was applied and closes the database. It waits for read transactions,
// including snapshots being persisted; applying after Close panics.
func (f *FSM) Close() error {
	f.mu.Lock() // waits for an apply under way; none starts after
	defer f.mu.Unlock()
	f.commit()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	if err != nil {
		return fmt.Errorf("fsm: close state database: %w", err)
	}
	return nil
}

// Phase is the election's phase after the last entry applied (PhaseNone before it is
// created), without a read: a hint for answering early that the state machine decides anyway.
func (f *FSM) Phase() int32 { return f.summary.Load().election.GetPhase() }

// LatestElection is the election after the last entry applied (nil before it is created),
// without a read, for the node's periodic loops: a read would commit what waits first, once a
// second per loop. Like Phase, a hint: the state machine decides. It is shared; the caller
// must not change it.
func (f *FSM) LatestElection() *fsmpb.ElectionState { return f.summary.Load().election }

// OutboxPending is the number of messages in the outbox after the last entry applied, without
// a read.
func (f *FSM) OutboxPending() uint64 { return f.summary.Load().outboxPending }

// AppliedIndex is the index of the last raft entry applied. Every read sees it: reads commit
// what waits first.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// SetObserver installs o (nil removes it).
func (f *FSM) SetObserver(o Observer) {
	if o == nil {
		f.observer.Store(nil)
		return
	}
	f.observer.Store(&o)
}

// Apply applies one raft entry; see ApplyBatch.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// observation is what the observer hears about one command.
type observation struct {
	t    fsmpb.CommandType
	code fsmpb.ResponseCode
}

// ApplyBatch applies committed entries in the shared write transaction, which commits, with
// the applied index, within commitDelay or once it holds maxTxBytes of entries (commit.go).
// Entries at or below the applied index were applied before a restart and are skipped. Each
// command answers a *fsmpb.Response, refusals included; entries other than commands answer nil.
//
// A failure of the database itself (disk, corruption) panics: the entries are committed in
// raft, and a replica that went on without them would diverge. The restarted node replays them.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		panic("fsm: entries applied to a closed state machine")
	}
	responses := make([]interface{}, len(logs))
	for start := 0; start < len(logs); {
		end := start + txChunk(logs[start:])
		f.applyChunk(logs[start:end], responses[start:end])
		start = end
	}
	return responses
}

// maxTxBytes bounds the entries applied in one transaction. Raft hands a replica that fell
// behind everything committed since, up to its MaxAppendEntries entries: for an import, a
// few hundred thousand voters, whose B-tree pages bbolt would all hold dirty in memory
// until the commit (two pages of 4 KiB for each voter of a large roll: its record and its
// homonym key). A transaction per few megabytes bounds that memory; what one transaction or
// several write is the same, so replicas agree whatever batches raft handed them.
const maxTxBytes = 4 << 20

// txChunk is how many of logs, at least one, go into the next transaction.
func txChunk(logs []*raft.Log) int {
	size := 0
	for i, l := range logs {
		size += len(l.Data)
		if i > 0 && size > maxTxBytes {
			return i
		}
	}
	return len(logs)
}

// applyChunk applies logs in the shared write transaction, filling responses, and commits
// it once it holds maxTxBytes of entries; otherwise it commits within commitDelay.
func (f *FSM) applyChunk(logs []*raft.Log, responses []interface{}) {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	tx, err := f.writeTx()
	var observed []observation
	var last uint64
	if err == nil {
		last, observed, err = f.applyInTx(tx, logs, responses)
	}
	if err != nil {
		if tx := f.takePending(); tx != nil {
			_ = tx.Rollback()
		}
		f.logger.Error("applying committed entries failed", "first", logs[0].Index, "count", len(logs), "err", err)
		panic(fmt.Sprintf("fsm: cannot apply entries %d..%d: %v", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	f.applied.Store(last)
	for _, l := range logs {
		f.pendingBytes += len(l.Data)
	}
	if f.pendingBytes >= maxTxBytes {
		f.commitLocked()
	}
	f.notify(observed)
}

// applyInTx fills responses and returns the new applied index.
func (f *FSM) applyInTx(tx *bolt.Tx, logs []*raft.Log, responses []interface{}) (uint64, []observation, error) {
	applied, err := readAppliedIndex(tx, f.sealer)
	if err != nil {
		return 0, nil, err
	}
	state, err := loadApplyState(tx, f.sealer)
	if err != nil {
		return 0, nil, err
	}
	watching := f.observer.Load() != nil
	var observed []observation
	last := applied
	for i, l := range logs {
		if l.Index <= last {
			responses[i] = &fsmpb.Response{Message: fmt.Sprintf("entry %d was already applied", l.Index)}
			continue
		}
		last = l.Index
		if l.Type != raft.LogCommand {
			if err := state.recordMembership(l); err != nil {
				return 0, nil, fmt.Errorf("entry %d: %w", l.Index, err)
			}
			continue
		}
		resp, t, err := state.applyEntry(l.Index, l.Data)
		if err != nil {
			return 0, nil, fmt.Errorf("entry %d: %w", l.Index, err)
		}
		responses[i] = resp
		if watching {
			observed = observe(observed, t, resp)
		}
	}
	if last == applied {
		return last, nil, nil
	}
	if err := state.flush(last); err != nil {
		return last, observed, err
	}
	f.summary.Store(&summary{election: state.election, outboxPending: state.counters.GetOutboxPending()})
	return last, observed, nil
}

// applyEntry decodes and applies the data of one command entry, then records it in the
// activity register. Garbage is refused, never fatal.
func (s *applyState) applyEntry(index uint64, data []byte) (*fsmpb.Response, fsmpb.CommandType, error) {
	s.index = index
	c, err := Decode(data)
	if err != nil {
		resp := errorResponse(err)
		return resp, fsmpb.CommandType_COMMAND_UNKNOWN, s.record(index, nil, resp)
	}
	resp, err := s.apply(c)
	if err == nil && resp.GetCastBatch() == nil { // a batch recorded each of its casts
		err = s.record(index, c, resp)
	}
	return resp, c.Type, err
}

// observe adds what the observer hears of one command: each cast of a batch, as a cast.
func observe(observed []observation, t fsmpb.CommandType, resp *fsmpb.Response) []observation {
	if b := resp.GetCastBatch(); b != nil {
		for _, r := range b.Responses {
			observed = append(observed, observation{fsmpb.CommandType_COMMAND_CAST, r.Code})
		}
		return observed
	}
	return append(observed, observation{t, resp.Code})
}

func (f *FSM) notify(observed []observation) {
	o := f.observer.Load()
	if o == nil {
		return
	}
	for _, ob := range observed {
		(*o)(ob.t, ob.code)
	}
}
