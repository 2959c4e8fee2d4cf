package boltwalk

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestOpenFillsTheMapping opens an 8 MiB file as a walk does and, before reading anything,
// finds the whole file resident in the mapping: filled in file order, not page by page.
func TestOpenFillsTheMapping(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the mapping is filled up front only on Linux; elsewhere the walk faults pages in")
	}
	path := filepath.Join(t.TempDir(), "walk.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 2048 {
			if err := b.Put([]byte(strconv.Itoa(i)), bytes.Repeat([]byte{1}, 4000)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(path, 0o600, Options(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	resident := mappedResident(t, path)
	if resident < info.Size()*9/10 {
		t.Fatalf("%d of the file's %d bytes are resident in its mapping after opening: it was not filled", resident, info.Size())
	}
}

// mappedResident sums the resident bytes of this process's mappings of path.
func mappedResident(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps to read the mapping from: %v", err)
	}
	defer f.Close()
	var total int64
	inFile := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"): // a mapping's first line; anonymous ones name no file
			inFile = len(fields) >= 6 && fields[len(fields)-1] == path
		case inFile && len(fields) == 3 && fields[0] == "Rss:":
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
