package storage

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// readCountingStore counts the reads that reach the store under the cache.
type readCountingStore struct {
	*raft.InmemStore
	reads atomic.Int64
}

func (s *readCountingStore) GetLog(index uint64, log *raft.Log) error {
	s.reads.Add(1)
	return s.InmemStore.GetLog(index, log)
}

func entry(index uint64, size int) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(index)}, size)}
}

func TestLogCacheBoundsBytes(t *testing.T) {
	store := &readCountingStore{InmemStore: raft.NewInmemStore()}
	const kb = 1 << 10
	c, err := NewLogCache(1024, 100*kb, store)
	if err != nil {
		t.Fatal(err)
	}
	// 20 entries of 10 KiB: only the newest fit in 100 KiB.
	for i := uint64(1); i <= 20; i++ {
		if err := c.StoreLogs([]*raft.Log{entry(i, 10*kb)}); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes > 100*kb {
		t.Fatalf("cache holds %d bytes, bound 100 KiB", c.bytes)
	}
	get := func(i uint64) (fromStore bool) {
		t.Helper()
		before := store.reads.Load()
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Index != i || !bytes.Equal(l.Data, entry(i, 10*kb).Data) {
			t.Fatalf("entry %d: got index %d, %d bytes", i, l.Index, len(l.Data))
		}
		return store.reads.Load() > before
	}
	if !get(1) {
		t.Fatal("entry 1 answered from memory: the byte bound evicted nothing")
	}
	if get(20) || get(15) {
		t.Fatal("a recent entry was read from the store")
	}
	// One entry heavier than the bound stays cached: the leader replicates it next.
	if err := c.StoreLog(entry(21, 200*kb)); err != nil {
		t.Fatal(err)
	}
	before := store.reads.Load()
	var l raft.Log
	if err := c.GetLog(21, &l); err != nil || l.Index != 21 || store.reads.Load() != before {
		t.Fatalf("oversized newest entry not served from memory (err %v)", err)
	}
	if get(20) != true {
		t.Fatal("entry 20 still cached beside an entry over the bound")
	}
	// Small entries: the count bounds the cache, as in raft.LogCache.
	if err := c.DeleteRange(1, 21); err != nil {
		t.Fatal(err)
	}
	small, err := NewLogCache(4, 100*kb, store)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(30); i < 40; i++ {
		if err := small.StoreLog(entry(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if small.bytes != 4*logWeight(entry(36, 10)) {
		t.Fatalf("cache of 4 entries weighs %d", small.bytes)
	}
}

func TestLogCacheForgetsDeletedRange(t *testing.T) {
	store := &readCountingStore{InmemStore: raft.NewInmemStore()}
	c, err := NewLogCache(16, 1<<20, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs([]*raft.Log{entry(1, 10), entry(2, 10), entry(3, 10)}); err != nil {
		t.Fatal(err)
	}
	// A follower truncates a conflicting suffix, then stores the leader's entries.
	if err := c.DeleteRange(2, 3); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(3, &l); err != raft.ErrLogNotFound {
		t.Fatalf("deleted entry 3: err %v, want raft.ErrLogNotFound", err)
	}
	replaced := &raft.Log{Index: 2, Term: 2, Type: raft.LogCommand, Data: []byte("leader's")}
	if err := c.StoreLog(replaced); err != nil {
		t.Fatal(err)
	}
	if err := c.GetLog(2, &l); err != nil || l.Term != 2 || string(l.Data) != "leader's" {
		t.Fatalf("entry 2 after truncation: %+v, %v", l, err)
	}
	if c.bytes != logWeight(replaced) {
		t.Fatalf("cache weighs %d after truncation, want %d", c.bytes, logWeight(replaced))
	}
}
