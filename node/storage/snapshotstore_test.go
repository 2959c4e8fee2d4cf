package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/urne-vote/urne/keyring"
)

// writeSnapshot stores content through store and returns the snapshot id.
func writeSnapshot(t *testing.T, store raft.SnapshotStore, index uint64, content []byte) string {
	t.Helper()
	_, trans := raft.NewInmemTransport("")
	sink, err := store.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sink.Write(content); err != nil || n != len(content) {
		t.Fatalf("sink.Write = %d, %v", n, err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func readSnapshot(store raft.SnapshotStore, id string) (*raft.SnapshotMeta, []byte, error) {
	meta, rc, err := store.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return meta, data, err
}

func snapshotContent(n int) []byte {
	return bytes.Repeat([]byte(canary+"|"), n/(len(canary)+1)+1)[:n]
}

func TestSnapshotStoreSizesAreExact(t *testing.T) {
	dir := t.TempDir()
	inner := newFileSnapshots(t, dir)
	store := NewSnapshotStore(inner, newKeyring(t, dir), nil)
	sizes := []int{0, 1, keyring.ChunkSize - 1, keyring.ChunkSize, keyring.ChunkSize + 1, 3*keyring.ChunkSize + 11}
	for i, size := range sizes {
		content := snapshotContent(size)
		id := writeSnapshot(t, store, uint64(i+1), content)
		meta, data, err := readSnapshot(store, id)
		if err != nil || meta.Size != int64(size) || !bytes.Equal(data, content) {
			t.Fatalf("size %d: Open gives meta.Size %d, %d bytes, %v", size, meta.Size, len(data), err)
		}
		rawMeta, _, err := inner.Open(id)
		if err != nil || rawMeta.Size != keyring.CiphertextSize(int64(size)) {
			t.Fatalf("size %d: file holds %d bytes; want the ciphertext size %d", size, rawMeta.Size, keyring.CiphertextSize(int64(size)))
		}
	}
	metas, err := store.List()
	if err != nil || len(metas) != 3 { // the file store retains 3
		t.Fatalf("List = %d metas, %v", len(metas), err)
	}
	for i, meta := range metas {
		if want := int64(sizes[len(sizes)-1-i]); meta.Size != want {
			t.Fatalf("List()[%d].Size = %d; want %d", i, meta.Size, want)
		}
	}
}

// rewriteSnapshot replaces a file snapshot's contents and fixes its size and CRC in meta.json,
// so that only the encryption layer can notice the change.
func rewriteSnapshot(t *testing.T, dir, id string, mutate func([]byte) []byte) {
	t.Helper()
	snapDir := filepath.Join(dir, "snapshots", id)
	state, err := os.ReadFile(filepath.Join(snapDir, "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	state = mutate(state)
	var meta map[string]any
	metaBytes, err := os.ReadFile(filepath.Join(snapDir, "meta.json"))
	if err == nil {
		err = json.Unmarshal(metaBytes, &meta)
	}
	if err != nil {
		t.Fatal(err)
	}
	crc := crc64.New(crc64.MakeTable(crc64.ECMA))
	crc.Write(state)
	meta["CRC"], meta["Size"] = crc.Sum(nil), len(state)
	if metaBytes, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snapDir, "state.bin"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snapDir, "meta.json"), metaBytes, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotStoreRejectsTamperedFiles(t *testing.T) {
	content := snapshotContent(2*keyring.ChunkSize + 100)
	full := keyring.CiphertextSize(int64(len(content)))
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		kind   error
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, keyring.ErrDecrypt},
		// Without its final chunk a stream has a size no stream can have: Open refuses it.
		{"final chunk dropped", func(b []byte) []byte { return b[:keyring.CiphertextSize(2*keyring.ChunkSize)-16] }, keyring.ErrStreamSize},
		{"cut short", func(b []byte) []byte { return b[:full-50] }, keyring.ErrDecrypt},
		{"impossible size", func(b []byte) []byte { return b[:5] }, keyring.ErrStreamSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			store := NewSnapshotStore(newFileSnapshots(t, dir), newKeyring(t, dir), nil)
			id := writeSnapshot(t, store, 5, content)
			rewriteSnapshot(t, dir, id, tt.mutate)
			_, data, err := readSnapshot(store, id)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("read of a tampered snapshot = %d bytes, %v; want %v", len(data), err, tt.kind)
			}
		})
	}
}

// TestSnapshotStoreBindsID checks a snapshot's contents cannot be passed off as another
// snapshot's: the id is the stream's associated data.
func TestSnapshotStoreBindsID(t *testing.T) {
	dir := t.TempDir()
	store := NewSnapshotStore(newFileSnapshots(t, dir), newKeyring(t, dir), nil)
	first := writeSnapshot(t, store, 5, []byte("first "+canary))
	second := writeSnapshot(t, store, 6, []byte("second"))
	stolen, err := os.ReadFile(filepath.Join(dir, "snapshots", first, "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rewriteSnapshot(t, dir, second, func([]byte) []byte { return stolen })
	if _, _, err := readSnapshot(store, second); !errors.Is(err, keyring.ErrDecrypt) {
		t.Fatalf("read of another snapshot's contents = %v; want keyring.ErrDecrypt", err)
	}
}

func TestSnapshotStoreCancel(t *testing.T) {
	dir := t.TempDir()
	store := NewSnapshotStore(newFileSnapshots(t, dir), newKeyring(t, dir), nil)
	_, trans := raft.NewInmemTransport("")
	sink, err := store.Create(raft.SnapshotVersionMax, 3, 1, raft.Configuration{}, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte(canary)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatal(err)
	}
	if metas, err := store.List(); err != nil || len(metas) != 0 {
		t.Fatalf("List after Cancel = %d, %v", len(metas), err)
	}
}

// fakeLive is a state machine at index applied whose references are "ref:" and an index.
type fakeLive struct{ applied uint64 }

func (f fakeLive) SnapshotReference(b []byte) (uint64, bool) {
	index, err := strconv.ParseUint(strings.TrimPrefix(string(b), "ref:"), 10, 64)
	return index, strings.HasPrefix(string(b), "ref:") && err == nil
}

func (f fakeLive) ExpandSnapshot(index uint64) (int64, io.ReadCloser, error) {
	if index > f.applied {
		return 0, nil, fmt.Errorf("state at %d is behind %d", f.applied, index)
	}
	full := fmt.Sprintf("full state at %d", f.applied)
	return int64(len(full)), io.NopCloser(strings.NewReader(full)), nil
}

// A reference opens as the live state, with that state's size; a short snapshot that is not a
// reference, or any snapshot without a live state, opens as it is stored.
func TestSnapshotStoreExpandsReferences(t *testing.T) {
	dir := t.TempDir()
	kr := newKeyring(t, dir)
	store := NewSnapshotStore(newFileSnapshots(t, dir), kr, fakeLive{applied: 9})
	ref := writeSnapshot(t, store, 7, []byte("ref:7"))
	meta, data, err := readSnapshot(store, ref)
	if err != nil || string(data) != "full state at 9" || meta.Size != int64(len(data)) || meta.Index != 7 {
		t.Fatalf("reference opens as %q (meta index %d, size %d), %v", data, meta.Index, meta.Size, err)
	}
	if index, ok, err := store.Reference(ref); err != nil || !ok || index != 7 {
		t.Fatalf("Reference = %d, %v, %v", index, ok, err)
	}
	short := writeSnapshot(t, store, 8, []byte("tiny"))
	if _, data, err := readSnapshot(store, short); err != nil || string(data) != "tiny" {
		t.Fatalf("short full snapshot opens as %q, %v", data, err)
	}
	if _, ok, err := store.Reference(short); err != nil || ok {
		t.Fatalf("a full snapshot is taken for a reference: %v, %v", ok, err)
	}
	ahead := writeSnapshot(t, store, 10, []byte("ref:10"))
	if _, _, err := readSnapshot(store, ahead); err == nil || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("a reference beyond the live state opens: %v", err)
	}
	plain := NewSnapshotStore(newFileSnapshots(t, dir), kr, nil)
	if _, data, err := readSnapshot(plain, ahead); err != nil || string(data) != "ref:10" {
		t.Fatalf("without a live state the reference opens as %q, %v", data, err)
	}
}
