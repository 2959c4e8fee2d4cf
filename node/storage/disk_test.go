package storage

import (
	"encoding/binary"
	"testing"

	"github.com/hashicorp/raft"
)

// TestNoPlaintextOnDisk writes a canary through each store, closes the files, and scans every
// byte under the directory. Without the wrapper the same scan must find the canary.
func TestNoPlaintextOnDisk(t *testing.T) {
	const term = 0xC0FFEE1234567890 // a uint64 canary for SetUint64
	termBytes := binary.BigEndian.AppendUint64(nil, term)
	stores := []struct {
		name   string
		needle []byte
		write  func(t *testing.T, dir string, wrap bool)
	}{
		{"log", []byte(canary), func(t *testing.T, dir string, wrap bool) {
			var ls raft.LogStore = newBolt(t, dir)
			if wrap {
				ls = NewLogStore(ls, newKeyring(t, dir))
			}
			if err := ls.StoreLogs(testLogs()); err != nil {
				t.Fatal(err)
			}
		}},
		{"stable", []byte(canary), func(t *testing.T, dir string, wrap bool) {
			var ss raft.StableStore = newBolt(t, dir)
			if wrap {
				ss = NewStableStore(ss, newKeyring(t, dir))
			}
			if err := ss.Set([]byte("LastVoteCand"), []byte(canary)); err != nil {
				t.Fatal(err)
			}
		}},
		{"stable uint64", termBytes, func(t *testing.T, dir string, wrap bool) {
			var ss raft.StableStore = newBolt(t, dir)
			if wrap {
				ss = NewStableStore(ss, newKeyring(t, dir))
			}
			if err := ss.SetUint64([]byte("CurrentTerm"), term); err != nil {
				t.Fatal(err)
			}
		}},
		{"snapshot", []byte(canary), func(t *testing.T, dir string, wrap bool) {
			var snaps raft.SnapshotStore = newFileSnapshots(t, dir)
			if wrap {
				snaps = NewSnapshotStore(snaps, newKeyring(t, dir), nil)
			}
			writeSnapshot(t, snaps, 7, snapshotContent(100_000))
		}},
	}
	for _, s := range stores {
		for _, wrap := range []bool{true, false} {
			name := s.name + "/plaintext"
			if wrap {
				name = s.name + "/encrypted"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				t.Run("write", func(t *testing.T) { s.write(t, dir, wrap) }) // its cleanup closes the files
				assertCanary(t, dir, s.needle, !wrap)
			})
		}
	}
}
