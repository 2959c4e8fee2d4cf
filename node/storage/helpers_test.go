package storage

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/urne-vote/urne/keyring"
)

// canary is planted in every payload; it must never be found on disk behind the wrappers.
const canary = "CANARY-ballot-for-list-B-7f3a9c"

func newKeyring(t testing.TB, dir string) *keyring.Keyring {
	t.Helper()
	kek, err := keyring.GenerateKEK("test-kek")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Create(filepath.Join(dir, "keyring"), kek)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// newBolt opens a raft-boltdb store in dir and closes it when the test ends.
func newBolt(t testing.TB, dir string) *raftboltdb.BoltStore {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func newFileSnapshots(t testing.TB, dir string) *raft.FileSnapshotStore {
	t.Helper()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 3, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return snaps
}

// filesContaining returns every file under dir whose bytes contain needle.
func filesContaining(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, needle) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// assertCanary checks whether the canary is on disk under dir, as expected.
func assertCanary(t *testing.T, dir string, needle []byte, wantPresent bool) {
	t.Helper()
	found := filesContaining(t, dir, needle)
	if wantPresent && len(found) == 0 {
		t.Fatalf("canary not found under %s without encryption: the scan cannot detect a leak", dir)
	}
	if !wantPresent && len(found) > 0 {
		t.Fatalf("plaintext canary found on disk in %v", found)
	}
}

// poll retries cond until it holds or the deadline passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
