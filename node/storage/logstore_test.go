package storage

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/urne-vote/urne/keyring"
)

func testLogs() []*raft.Log {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	return []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("config " + canary), AppendedAt: at},
		{Index: 2, Term: 1, Type: raft.LogNoop, AppendedAt: at},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte("cast " + canary), Extensions: []byte("ext " + canary), AppendedAt: at},
		{Index: 4, Term: 2, Type: raft.LogCommand, Data: []byte{}, AppendedAt: at},
	}
}

func TestLogStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ls := NewLogStore(newBolt(t, dir), newKeyring(t, dir))
	logs := testLogs()
	if err := ls.StoreLogs(logs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := ls.StoreLog(logs[3]); err != nil {
		t.Fatal(err)
	}
	for _, want := range logs {
		var got raft.Log
		if err := ls.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v; want %+v", want.Index, got, *want)
		}
	}
	first, err1 := ls.FirstIndex()
	last, err2 := ls.LastIndex()
	if first != 1 || last != 4 || err1 != nil || err2 != nil {
		t.Fatalf("FirstIndex, LastIndex = %d, %d (%v, %v)", first, last, err1, err2)
	}
	if err := ls.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	var gone raft.Log
	if err := ls.GetLog(1, &gone); err != raft.ErrLogNotFound { // raft compares with ==
		t.Fatalf("GetLog of a deleted entry = %v; want raft.ErrLogNotFound itself", err)
	}
}

func TestLogStoreLeavesCallerLogsAlone(t *testing.T) {
	dir := t.TempDir()
	ls := NewLogStore(newBolt(t, dir), newKeyring(t, dir))
	logs := testLogs()
	data := logs[2].Data
	if err := ls.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := ls.StoreLog(logs[0]); err != nil {
		t.Fatal(err)
	}
	for i, want := range testLogs() {
		if !bytes.Equal(logs[i].Data, want.Data) || !bytes.Equal(logs[i].Extensions, want.Extensions) {
			t.Fatalf("StoreLogs changed the caller's entry %d: %q", want.Index, logs[i].Data)
		}
	}
	if &logs[2].Data[0] != &data[0] {
		t.Fatal("StoreLogs replaced the caller's Data slice")
	}
}

func TestLogStoreRejectsTamperedEntries(t *testing.T) {
	dir := t.TempDir()
	inner := newBolt(t, dir)
	ls := NewLogStore(inner, newKeyring(t, dir))
	if err := ls.StoreLogs(testLogs()); err != nil {
		t.Fatal(err)
	}
	var raw3 raft.Log
	if err := inner.GetLog(3, &raw3); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		index  uint64
		mutate func(l *raft.Log)
		msg    string
	}{
		{"flipped data byte", 3, func(l *raft.Log) { l.Data[len(l.Data)-1] ^= 1 }, "raft log entry 3: "},
		{"flipped extensions byte", 3, func(l *raft.Log) { l.Extensions[20] ^= 1 }, "raft log entry 3 extensions: "},
		{"data moved to another index", 1, func(l *raft.Log) { l.Data = raw3.Data }, `"raft-log/1" does not authenticate`},
		{"emptied data", 2, func(l *raft.Log) { l.Data = nil }, "raft log entry 2: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ls.StoreLogs(testLogs()); err != nil { // undo the previous case
				t.Fatal(err)
			}
			var raw raft.Log
			if err := inner.GetLog(tt.index, &raw); err != nil {
				t.Fatal(err)
			}
			tt.mutate(&raw)
			if err := inner.StoreLog(&raw); err != nil {
				t.Fatal(err)
			}
			var got raft.Log
			err := ls.GetLog(tt.index, &got)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("GetLog = %v; want an error containing %q", err, tt.msg)
			}
			if !errors.Is(err, keyring.ErrDecrypt) && !errors.Is(err, keyring.ErrShortCiphertext) {
				t.Fatalf("GetLog = %v; want a keyring decryption error", err)
			}
		})
	}
}

// monoStore is an inner store that declares itself monotonic or not.
type monoStore struct {
	raft.LogStore
	monotonic bool
}

func (m monoStore) IsMonotonic() bool { return m.monotonic }

func TestLogStoreMonotonicPassThrough(t *testing.T) {
	kr := newKeyring(t, t.TempDir())
	tests := []struct {
		name      string
		inner     raft.LogStore
		implement bool
		monotonic bool
	}{
		{"plain inner", raft.NewInmemStore(), false, false},
		{"monotonic inner", monoStore{raft.NewInmemStore(), true}, true, true},
		{"inner says not monotonic", monoStore{raft.NewInmemStore(), false}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mono, ok := NewLogStore(tt.inner, kr).(raft.MonotonicLogStore)
			if ok != tt.implement || (ok && mono.IsMonotonic() != tt.monotonic) {
				t.Fatalf("implements %v (want %v), monotonic %v (want %v)", ok, tt.implement, ok && mono.IsMonotonic(), tt.monotonic)
			}
		})
	}
}
