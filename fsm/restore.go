package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// restoreChunk is how many records one transaction writes while a snapshot is rebuilt:
// it bounds the memory of a restore, and the file is not live until complete.
const restoreChunk = 4096

// Restore replaces the whole state with a snapshot stream. The new database is built next
// to the live one, checked, synced, and renamed over it; a truncated or corrupt stream is
// refused and the current state is kept. Readers see either the old or the new state.
//
// A reference (a snapshot this node's store did not expand) changes nothing when the
// database has reached its index, since the database is then what it refers to: raft's
// offline recovery restores the newest snapshot before it replays the log. A reference
// beyond the database is refused.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if f.closed() {
		return ErrClosed
	}
	f.commit() // a refused snapshot keeps the current state, all of it
	r := bufio.NewReaderSize(rc, snapshotBufSize)
	if head, _ := r.Peek(referenceSize + 1); len(head) == referenceSize {
		if index, ok := f.SnapshotReference(head); ok {
			return f.restoreReference(index)
		}
	}
	tmp := f.path + restoreSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsm: remove unfinished restore: %w", err)
	}
	index, err := f.buildFromSnapshot(tmp, r)
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("fsm: snapshot refused, current state kept: %w", err)
	}
	if err := f.swapIn(tmp); err != nil {
		return err
	}
	f.logger.Info("state restored from snapshot", "applied_index", index)
	return nil
}

func (f *FSM) restoreReference(index uint64) error {
	applied := f.applied.Load()
	if index > applied {
		return fmt.Errorf("fsm: snapshot refused, current state kept: %w: it refers to this node's state database at index %d, "+
			"which is at %d; only a full copy can bring it there", ErrCorrupt, index, applied)
	}
	f.logger.Info("snapshot refers to the state database, which holds it: nothing to restore", "snapshot_index", index, "applied_index", applied)
	return nil
}

func (f *FSM) closed() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.db == nil
}

// buildFromSnapshot writes the stream into a new database at tmp, sealing every value,
// and returns its applied index once the whole stream and the result have been checked.
func (f *FSM) buildFromSnapshot(tmp string, r io.Reader) (uint64, error) {
	sr, err := newSnapshotReader(r)
	if err != nil {
		return 0, err
	}
	// fsync once at the end rather than per chunk: the file is not live until renamed. The
	// freelist is written, as on the live file, so that the reopen after the rename reads it
	// instead of scanning every page.
	db, err := openBolt(tmp, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return 0, err
	}
	err = f.fillFromSnapshot(db, sr)
	if err == nil {
		err = db.View(func(tx *bolt.Tx) error { return checkRestored(tx, f.sealer, sr.index) })
	}
	if err == nil {
		err = db.Sync()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return sr.index, err
}

func (f *FSM) fillFromSnapshot(db *bolt.DB, sr *snapshotReader) error {
	if err := db.Update(createBuckets); err != nil {
		return err
	}
	for more := true; more; {
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < restoreChunk && more; i++ {
				rec, ok, err := sr.next()
				if err != nil {
					return err
				}
				if more = ok; ok {
					if err := putSealed(tx, f.sealer, rec.bucket, rec.key, rec.value); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkRestored checks the rebuilt database against its own meta records: the applied
// index of the header, and counters that match the buckets.
func checkRestored(tx *bolt.Tx, s Sealer, index uint64) error {
	if tx.Bucket(bucketMeta).Get(keyAppliedIndex) == nil {
		return fmt.Errorf("%w: snapshot holds no applied index", ErrCorrupt)
	}
	applied, err := readAppliedIndex(tx, s)
	if err != nil {
		return err
	}
	if applied != index {
		return fmt.Errorf("%w: snapshot header says index %d, its state says %d", ErrCorrupt, index, applied)
	}
	return checkCounters(tx, s)
}

// swapIn renames the rebuilt database over the live one and reopens it. The old database
// is closed last; Close waits for snapshots still streaming from it.
func (f *FSM) swapIn(tmp string) error {
	if err := os.Rename(tmp, f.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("fsm: move the restored database into place, current state kept: %w", err)
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		f.logger.Warn("could not sync the state directory after restore", "err", err)
	}
	db, index, sum, err := f.openReadWrite(f.path)
	if err != nil {
		return fmt.Errorf("fsm: the restored database is in place but does not open; restart the node: %w", err)
	}
	f.mu.Lock()
	old := f.db
	f.db = db
	f.applied.Store(index)
	f.summary.Store(sum)
	f.mu.Unlock()
	if err := old.Close(); err != nil {
		f.logger.Warn("closing the replaced state database failed", "err", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
