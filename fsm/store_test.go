package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpenWithWrongSealerFailsAndTouchesNothing(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	h.f.Close()
	before := fileHash(t, h.path)
	_, err := Open(h.path, newSealer(t, 9), nil)
	if err == nil || !strings.Contains(err.Error(), "keyring") {
		t.Fatalf("open with another key: %v, want a refusal naming the keyring", err)
	}
	if fileHash(t, h.path) != before {
		t.Fatal("a refused open changed the database file")
	}
	f, err := Open(h.path, h.f.sealer, nil)
	if err != nil {
		t.Fatalf("reopen with the right key: %v", err)
	}
	f.Close()
}

func TestOpenWrongSealerOnNewDatabase(t *testing.T) {
	// A database is sealed from its creation, before any entry is applied.
	path := filepath.Join(t.TempDir(), "state.db")
	f, err := Open(path, newSealer(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(path, newSealer(t, 2), nil); err == nil {
		t.Fatal("a fresh database opened with another key")
	}
}

func TestOpenRefusesDamagedFiles(t *testing.T) {
	real := newHarness(t)
	real.openElection("alice")
	real.f.Close()
	good, err := os.ReadFile(real.path)
	if err != nil {
		t.Fatal(err)
	}
	metaFlipped := bytes.Clone(good)
	for _, off := range []int{40, 4096 + 40} { // both meta pages
		metaFlipped[off] ^= 0xff
	}
	pagesCorrupt := bytes.Clone(good)
	for off := 2 * 4096; off < len(pagesCorrupt); off += 4096 {
		copy(pagesCorrupt[off+10:], []byte{0xff, 0x7f}) // element count of every data page
	}
	cases := map[string][]byte{
		"sealed value": tamperedValue(t, real.path, good),
		"data pages":   pagesCorrupt,
		"garbage":      bytes.Repeat([]byte("not a database "), 1000),
		"truncated":    good[:5000],
		"meta pages":   metaFlipped,
		"short":        []byte{1, 2, 3},
		"foreign db":   foreignDatabase(t),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path, newSealer(t, 1), nil)
			if err == nil {
				f.Close()
				t.Fatal("a damaged file was accepted")
			}
			t.Log(err)
		})
	}
}

// tamperedValue flips one byte of the sealed election record inside the file image.
func tamperedValue(t *testing.T, path string, image []byte) []byte {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sealed []byte
	db.View(func(tx *bolt.Tx) error {
		sealed = bytes.Clone(tx.Bucket(bucketMeta).Get(keyElection))
		return nil
	})
	off := bytes.Index(image, sealed)
	if off < 0 {
		t.Fatal("sealed election record not found in the file")
	}
	out := bytes.Clone(image)
	out[off+len(sealed)-1] ^= 0x01
	return out
}

// foreignDatabase is a valid bbolt file of another program.
func foreignDatabase(t *testing.T) []byte {
	path := filepath.Join(t.TempDir(), "raft.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("logs"))
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSealedValueBoundToItsKey swaps the sealed roll records of alice and bob: counts stay
// right, but a value under another key must not open.
func TestSealedValueBoundToItsKey(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	h.f.Close()
	db, err := bolt.Open(h.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVoters)
		alice, bob := voterKey(fixedIndexKey, "alice"), voterKey(fixedIndexKey, "bob")
		va, vb := bytes.Clone(b.Get(alice)), bytes.Clone(b.Get(bob))
		if err := b.Put(alice, vb); err != nil {
			return err
		}
		return b.Put(bob, va)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(h.path, h.f.sealer, nil)
	if err == nil {
		f.Close()
		t.Fatal("a database whose sealed values were swapped between keys was accepted")
	}
	if !strings.Contains(err.Error(), "bucket voters") {
		t.Fatalf("refusal does not name the bucket: %v", err)
	}
}

func TestNoPlaintextAtRest(t *testing.T) {
	const canary = "CANARY-xyz"
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "Election " + canary})
	h.mustApply(typeImport, &fsmpb.ImportVoters{Voters: []*fsmpb.VoterRecord{
		{VoterId: canary + "-1", Name: "Jane " + canary, Email: canary + "@example.org"},
		{VoterId: canary + "-2", Name: "John " + canary, Email: "john@example.org"},
	}})
	h.mustApply(typeOpen, &fsmpb.Transition{})
	h.mustApply(typeCast, cast("request-"+canary, canary+"-1", "ballot "+canary))
	snap := persist(t, h.f)
	restored := newHarness(t)
	if err := restored.f.Restore(snap); err != nil {
		t.Fatal(err)
	}
	restored.mustApply(typeCast, cast("request-2-"+canary, canary+"-2", "ballot 2 "+canary))
	for _, x := range []*harness{h, restored} {
		x.f.Close()
		scanDir(t, filepath.Dir(x.path), canary)
	}
}

// scanDir fails if any file under dir holds needle.
func scanDir(t *testing.T, dir, needle string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(needle)) {
			t.Errorf("%s holds %q in plaintext", filepath.Base(path), needle)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestResponseError(t *testing.T) {
	for code, sentinel := range codeErrors {
		err := ResponseError(&fsmpb.Response{Code: code, Message: "why"})
		if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "why") {
			t.Errorf("code %s: %v", code, err)
		}
		if responseCode(err) != code {
			t.Errorf("code %s does not survive a round trip", code)
		}
	}
	if ResponseError(&fsmpb.Response{}) != nil {
		t.Error("OK response reported as an error")
	}
	if ResponseError(nil) == nil {
		t.Error("nil response reported as OK")
	}
}

// TestCommitsWriteTheFreelist checks that the newest meta page of a closed database names a
// freelist page: opening it then reads the freelist instead of walking every page of the tree,
// which grows with the election.
func TestCommitsWriteTheFreelist(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	h.f.Close()
	raw, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt's two meta pages follow a 16-byte page header: magic, version, page size and
	// flags (4 bytes each), the root bucket (16), then the freelist page id, the high-water
	// page id and the transaction id (8 each).
	const noFreelist = ^uint64(0)
	pageSize := int(binary.LittleEndian.Uint32(raw[16+8:]))
	var newest, freelist uint64
	for _, off := range []int{0, pageSize} {
		meta := raw[off+16:]
		if txid := binary.LittleEndian.Uint64(meta[48:]); txid >= newest {
			newest, freelist = txid, binary.LittleEndian.Uint64(meta[32:])
		}
	}
	if newest == 0 || freelist == noFreelist {
		t.Fatalf("newest meta (txid %d) names freelist page %#x: the freelist is not written", newest, freelist)
	}
}
