package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseBlockStat(t *testing.T) {
	// A line of /sys/block/vda/stat: 59,430,048 sectors written.
	line := []byte("   44414     7458  2125866    13019  2651070    25746 59430048  5333058        0   109308  5406133     5795        0 15557840     4283    84323    55772\n")
	got, err := parseBlockStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(59430048 * 512); got != want {
		t.Fatalf("bytes written = %d, want %d", got, want)
	}
	for _, bad := range []string{"", "1 2 3 4 5 6", "1 2 3 4 5 6 x 8", "1 2 3 4 5 6 -1", "1 2 3 4 5 6 36028797018963968"} {
		if _, err := parseBlockStat([]byte(bad)); err == nil {
			t.Errorf("%q: parsed without an error", bad)
		}
	}
}

func FuzzParseBlockStat(f *testing.F) {
	f.Add([]byte("0 0 0 0 0 0 1 0 0 0 0"))
	f.Add([]byte("   44414     7458  2125866    13019  2651070    25746 59430048  5333058        0   109308  5406133"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := parseBlockStat(raw)
		if err == nil && n%blockSector != 0 {
			t.Fatalf("%q: %d bytes, not whole sectors", raw, n)
		}
	})
}

// The counter follows what is synced to the device under a folder: 8 MiB written and synced
// show in it. Any other writer on the device only adds to it.
func TestDeviceWritesCountsSyncedWrites(t *testing.T) {
	dir := t.TempDir()
	before, ok, err := deviceWrites(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("%s is on no block device (tmpfs, overlay or not Linux): nothing to count", dir)
	}
	const size = 8 << 20
	f, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte{0xa5}, size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, _, err := deviceWrites(dir)
		if err != nil {
			t.Fatal(err)
		}
		if after-before >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device counted %d bytes written after %d were synced", after-before, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
