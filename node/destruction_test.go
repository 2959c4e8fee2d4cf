package node

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveSetAside: the folders a restore set aside (each with its own keyring under the
// node's KEK) go with the erasure; the node's own data folder stays.
func TestRemoveSetAside(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	for _, d := range []string{data, data + ".before-restore-20260101T000000Z", data + ".before-restore-x"} {
		if err := os.MkdirAll(filepath.Join(d, "snapshots"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	n := &Node{cfg: Config{DataDir: data}}
	removed, err := n.removeSetAside()
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	left, _ := filepath.Glob(filepath.Join(root, "*"))
	if len(left) != 1 || left[0] != data {
		t.Fatalf("left %v", left)
	}
}
