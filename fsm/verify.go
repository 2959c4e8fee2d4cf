package fsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/internal/boltwalk"
)

// openBolt opens a bbolt file, turning the panics bbolt raises on some corrupt files into errors.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("fsm: %w: %s is not a readable bbolt database: %v", ErrCorrupt, path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, fmt.Errorf("fsm: open state database %s: %w", path, err)
	}
	return db, nil
}

// verifyExisting checks an existing database read-only: no foreign bucket, every value
// opens with s, counters match. A missing file is fine: Open creates it.
func verifyExisting(path string, s Sealer) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := openBolt(path, boltwalk.Options(openTimeout))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error { return verifyTx(tx, s) }); err != nil {
		return fmt.Errorf("fsm: refusing state database %s: %w", path, err)
	}
	return nil
}

// verifyTx runs the checks of verifyExisting inside one read transaction: it walks every
// bucket in key order and opens every value, then compares the counters with the buckets.
//
// bbolt's own Check is not used: it, and the freelist scan of a read-write open of a file
// without a written freelist (one from an earlier version), walk the pages in goroutines of
// their own, where a panic on a corrupt page cannot be recovered. This walk runs here, with
// memory faults turned into panics, so a corrupt file is refused before the read-write open
// reaches it.
func verifyTx(tx *bolt.Tx, s Sealer) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt failed while reading: %v", ErrCorrupt, r)
		}
	}()
	present, err := checkBuckets(tx)
	if err != nil || present == 0 {
		return err
	}
	for _, name := range coreBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
		}
	}
	if _, err := readAppliedIndex(tx, s); err != nil {
		return fmt.Errorf("its values do not open with the configured keyring (wrong key-encryption key or data key?): %w", err)
	}
	if err := walkPlain(tx, s, func(_, _, _ []byte) error { return nil }); err != nil {
		return err
	}
	return checkCounters(tx, s)
}

// checkBuckets counts our buckets and refuses a bbolt file of another program (a raft log
// store, say). Buckets added by later versions may be missing: the read-write open makes them.
func checkBuckets(tx *bolt.Tx) (int, error) {
	present := 0
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if retired(name) {
			return nil
		}
		if bucketRank(name) < 0 {
			return fmt.Errorf("%w: unexpected bucket %q: not an Urne state database", ErrCorrupt, name)
		}
		present++
		return nil
	})
	return present, err
}

// checkCounters compares the counters of meta with the number of records of each bucket.
func checkCounters(tx *bolt.Tx, s Sealer) error {
	if _, err := readElection(tx, s); err != nil {
		return err
	}
	c, err := readCounters(tx, s)
	if err != nil {
		return err
	}
	expected := []struct {
		bucket []byte
		count  uint64
	}{{bucketVoters, c.Voters}, {bucketEmargement, c.Emargements}, {bucketBox, c.Ballots}}
	for _, e := range expected {
		if got := uint64(tx.Bucket(e.bucket).Stats().KeyN); got != e.count {
			return fmt.Errorf("%w: counters say %d records in %s, the bucket holds %d", ErrCorrupt, e.count, e.bucket, got)
		}
	}
	return nil
}
