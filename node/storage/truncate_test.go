package storage

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// failingStore fails appends while failing is set, as a full disk would.
type failingStore struct {
	*raft.InmemStore
	failing bool
}

func (f *failingStore) StoreLogs(logs []*raft.Log) error {
	if f.failing {
		return errors.New("no space left on device")
	}
	return f.InmemStore.StoreLogs(logs)
}

func entries(term uint64, from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: term, Type: raft.LogCommand})
	}
	return out
}

func termAt(t *testing.T, s raft.LogStore, index uint64) uint64 {
	t.Helper()
	var l raft.Log
	if err := s.GetLog(index, &l); err != nil {
		return 0
	}
	return l.Term
}

// A follower's conflict resolution (delete the suffix, append the leader's entries) must
// leave the log as it was when the append fails: raft still counts on the old suffix.
func TestFailedAppendAfterTruncationKeepsTheLog(t *testing.T) {
	inner := &failingStore{InmemStore: raft.NewInmemStore()}
	s := NewTruncationSafeLogStore(inner)
	if err := s.StoreLogs(entries(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	if termAt(t, s, 9) != 0 {
		t.Fatal("a deleted entry still reads before the append")
	}
	inner.failing = true
	if err := s.StoreLogs(entries(2, 9, 9)); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	if last, _ := s.LastIndex(); last != 10 || termAt(t, s, 9) != 1 || termAt(t, s, 10) != 1 {
		t.Fatalf("after the failed append: last %d, terms %d %d; want the log untouched (10, 1, 1)", last, termAt(t, s, 9), termAt(t, s, 10))
	}
	inner.failing = false
	if err := s.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(2, 9, 9)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 9 || termAt(t, s, 9) != 2 || termAt(t, s, 10) != 0 {
		t.Fatalf("after the append: last %d, terms %d %d; want 9, 2, gone", last, termAt(t, s, 9), termAt(t, s, 10))
	}
}

func TestCompactionIsImmediateAndFlushesAHeldTruncation(t *testing.T) {
	s := NewTruncationSafeLogStore(raft.NewInmemStore())
	if err := s.StoreLogs(entries(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 5 {
		t.Fatalf("first index %d after compaction, want 5", first)
	}
	_ = s.DeleteRange(8, 10) // held back
	if err := s.DeleteRange(5, 6); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 7 || termAt(t, s, 8) != 0 {
		t.Fatalf("held truncation lost by a compaction: last %d", last)
	}
}

func TestAppendBeyondAHeldTruncationDeletesAllOfIt(t *testing.T) {
	s := NewTruncationSafeLogStore(raft.NewInmemStore())
	if err := s.StoreLogs(entries(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	_ = s.DeleteRange(5, 10)
	if err := s.StoreLogs(entries(2, 12, 13)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(5); i <= 10; i++ {
		if termAt(t, s, i) != 0 {
			t.Fatalf("entry %d survived its deletion", i)
		}
	}
	if termAt(t, s, 4) != 1 || termAt(t, s, 12) != 2 {
		t.Fatal("kept or appended entries missing")
	}
}
