package node

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// TestRaftLogWritesNoFreelist compacts a raft log as a snapshot does and appends after it:
// raft.db must hold no freelist page (each commit would rewrite it whole), and the node must
// open it again, check it and read every entry kept.
func TestRaftLogWritesNoFreelist(t *testing.T) {
	dir := t.TempDir()
	keys := newTestKeyring(t, dir)
	open := func() (*raftStores, func()) {
		t.Helper()
		f, stores, err := openStores(dir, "n1", keys, slog.New(slog.DiscardHandler), true)
		if err != nil {
			t.Fatal(err)
		}
		return stores, func() {
			if err := stores.Close(); err != nil {
				t.Error(err)
			}
			f.Close()
		}
	}
	entry := func(i uint64) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 10_000)}
	}
	stores, closeStores := open()
	for i := uint64(1); i <= 300; i++ {
		if err := stores.log.StoreLog(entry(i)); err != nil {
			t.Fatal(err)
		}
		if i == 200 {
			if err := stores.log.DeleteRange(1, 150); err != nil {
				t.Fatal(err)
			}
		}
	}
	closeStores()

	db, err := bolt.Open(filepath.Join(dir, "raft.db"), 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		var free int
		for id := range int(tx.Size()) / db.Info().PageSize {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			switch p.Type {
			case "freelist":
				t.Errorf("page %d of raft.db is a freelist: every commit rewrites it", id)
			case "free":
				free++
			}
		}
		if free == 0 {
			t.Error("the compaction freed no page of raft.db: the test no longer compacts")
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	stores, closeStores = open()
	defer closeStores()
	first, _ := stores.log.FirstIndex()
	last, _ := stores.log.LastIndex()
	if first != 151 || last != 300 {
		t.Fatalf("raft log holds %d to %d after reopening, want 151 to 300", first, last)
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := stores.log.GetLog(i, &got); err != nil {
			t.Fatalf("entry %d after reopening: %v", i, err)
		}
		if !bytes.Equal(got.Data, entry(i).Data) {
			t.Fatalf("entry %d came back changed", i)
		}
	}
}

// BenchmarkRaftLogAppend appends cast-batch-sized entries, one fsync'd commit each, to a raft
// log a snapshot has just compacted (SnapshotThreshold entries removed, TrailingLogs kept, the
// node's defaults): the moment its freelist is longest. It compares the node's options with
// bbolt's defaults, and reports the bytes each append wrote where /proc says.
func BenchmarkRaftLogAppend(b *testing.B) {
	cfg := DefaultConfig()
	for _, bc := range []struct {
		name string
		opts func() *bolt.Options
	}{
		{"freelist=map-unsynced", raftLogOptions},
		{"freelist=array-synced", func() *bolt.Options { return &bolt.Options{Timeout: 2 * time.Second} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "raft.db")
			data := bytes.Repeat([]byte{7}, 32<<10) // a batch of about 30 casts
			// Fill without fsync: only the appends measured below need it.
			bs, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: bc.opts(), NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			filled := cfg.SnapshotThreshold + cfg.TrailingLogs
			for i := uint64(1); i <= filled; i++ {
				if err := bs.StoreLog(&raft.Log{Index: i, Term: 1, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			if err := bs.DeleteRange(1, cfg.SnapshotThreshold); err != nil {
				b.Fatal(err)
			}
			if err := bs.Close(); err != nil {
				b.Fatal(err)
			}
			if bs, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: bc.opts()}); err != nil {
				b.Fatal(err)
			}
			defer bs.Close()
			written := writeBytes()
			b.ResetTimer()
			for i := range uint64(b.N) {
				if err := bs.StoreLog(&raft.Log{Index: filled + 1 + i, Term: 1, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if written >= 0 {
				b.ReportMetric(float64(writeBytes()-written)/1024/float64(b.N), "KiB-written/op")
			}
		})
	}
}

// writeBytes is what this process has caused to be written to storage, or -1 where /proc
// does not tell.
func writeBytes() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "write_bytes: "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}
