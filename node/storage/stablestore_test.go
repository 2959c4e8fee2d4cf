package storage

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/urne-vote/urne/keyring"
)

func TestStableStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ss := NewStableStore(newBolt(t, dir), newKeyring(t, dir))
	if err := ss.Set([]byte("LastVoteCand"), []byte("node-2 "+canary)); err != nil {
		t.Fatal(err)
	}
	if err := ss.Set([]byte("Empty"), nil); err != nil {
		t.Fatal(err)
	}
	if err := ss.SetUint64([]byte("CurrentTerm"), 1<<40+7); err != nil {
		t.Fatal(err)
	}
	if v, err := ss.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2 "+canary {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, err := ss.Get([]byte("Empty")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get of an empty value = %#v, %v; want a non-nil empty slice", v, err)
	}
	if v, err := ss.GetUint64([]byte("CurrentTerm")); err != nil || v != 1<<40+7 {
		t.Fatalf("GetUint64 = %d, %v", v, err)
	}
}

// TestStableStoreMissingKey checks the error shape raft relies on: it compares the message
// with "not found" when reading the current term and the last vote.
func TestStableStoreMissingKey(t *testing.T) {
	dir := t.TempDir()
	for name, inner := range map[string]raft.StableStore{"boltdb": newBolt(t, dir), "inmem": raft.NewInmemStore()} {
		t.Run(name, func(t *testing.T) {
			ss := NewStableStore(inner, newKeyring(t, t.TempDir()))
			v, err := ss.Get([]byte("LastVoteCand"))
			if v != nil || err == nil || err.Error() != "not found" {
				t.Fatalf("Get of a missing key = %q, %v; want nil, \"not found\"", v, err)
			}
			n, err := ss.GetUint64([]byte("CurrentTerm"))
			if n != 0 || err == nil || err.Error() != "not found" {
				t.Fatalf("GetUint64 of a missing key = %d, %v; want 0, \"not found\"", n, err)
			}
		})
	}
	ss := NewStableStore(newBolt(t, t.TempDir()), newKeyring(t, t.TempDir()))
	if _, err := ss.GetUint64([]byte("x")); !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		t.Fatalf("GetUint64 = %v; want raftboltdb.ErrKeyNotFound", err)
	}
}

func TestStableStoreRejectsTamperedValues(t *testing.T) {
	dir := t.TempDir()
	inner := newBolt(t, dir)
	ss := NewStableStore(inner, newKeyring(t, dir))
	if err := ss.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	sealed, err := inner.Get([]byte("CurrentTerm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := inner.Set([]byte("LastVoteTerm"), sealed); err != nil { // moved to another key
		t.Fatal(err)
	}
	if _, err := ss.GetUint64([]byte("LastVoteTerm")); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("GetUint64 of a value moved from another key = %v; want keyring.ErrDecrypt", err)
	}
	if err := inner.SetUint64([]byte("CurrentTerm"), 9); err != nil { // plaintext, as if unwrapped
		t.Fatal(err)
	}
	if _, err := ss.GetUint64([]byte("CurrentTerm")); !errors.Is(err, keyring.ErrShortCiphertext) {
		t.Fatalf("GetUint64 of a plaintext value = %v; want keyring.ErrShortCiphertext", err)
	}
	if err := ss.Set([]byte("Odd"), []byte("123")); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.GetUint64([]byte("Odd")); !errors.Is(err, ErrStableValue) {
		t.Fatalf("GetUint64 of a 3-byte value = %v; want ErrStableValue", err)
	}
}

// TestHasExistingStateThroughWrappers runs raft's own start-up probe over the wrapped stores.
func TestHasExistingStateThroughWrappers(t *testing.T) {
	dir := t.TempDir()
	bolt, kr := newBolt(t, dir), newKeyring(t, dir)
	logs, stable := NewLogStore(bolt, kr), NewStableStore(bolt, kr)
	snaps := NewSnapshotStore(newFileSnapshots(t, dir), kr, nil)
	if has, err := raft.HasExistingState(logs, stable, snaps); err != nil || has {
		t.Fatalf("HasExistingState on empty stores = %v, %v", has, err)
	}
	if err := stable.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if has, err := raft.HasExistingState(logs, stable, snaps); err != nil || !has {
		t.Fatalf("HasExistingState after a term = %v, %v", has, err)
	}
	if raw, _ := bolt.Get([]byte("CurrentTerm")); bytes.Equal(raw, []byte{0, 0, 0, 0, 0, 0, 0, 3}) {
		t.Fatal("CurrentTerm stored in clear")
	}
}
