package node

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urne-vote/urne/fsm"
)

// TestOpenStoresReleasesTheStateWhenTheLogIsRefused opens a data directory whose raft log is
// damaged: the state database, opened beside the log's check, must be closed again, so that
// the node can start once the log is restored.
func TestOpenStoresReleasesTheStateWhenTheLogIsRefused(t *testing.T) {
	dir := t.TempDir()
	keys := newTestKeyring(t, dir)
	f, stores, err := openStores(dir, "n1", keys, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := stores.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "raft.db")
	if err := os.WriteFile(log, []byte(strings.Repeat("not a raft log ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openStores(dir, "n1", keys, slog.New(slog.DiscardHandler), true); err == nil || !strings.Contains(err.Error(), log) {
		t.Fatalf("open with a damaged raft log: %v, want an error naming %s", err, log)
	}
	// bbolt locks the file for as long as it is open: a state database left open would make
	// this wait for the lock and fail.
	f, err = fsm.Open(filepath.Join(dir, "fsm.db"), keys, nil)
	if err != nil {
		t.Fatalf("the state database was left open: %v", err)
	}
	f.Close()
}
