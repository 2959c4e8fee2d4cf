package backup

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSaveVerifyRoundTrip(t *testing.T) {
	// 3000 voters with their names make a state larger than one chunk.
	st := makeState(t, 3000, 300)
	if len(st.Stream) <= ChunkSize {
		t.Fatalf("state of %d bytes does not span two chunks", len(st.Stream))
	}
	key := testKey(t, "backup-1")
	file := seal(t, st, key)
	if bytes.Contains(file, []byte("Voter v000001")) || bytes.Contains(file, []byte("URNESNAP")) {
		t.Fatal("the archive holds plaintext of the state")
	}
	v, err := Verify(bytes.NewReader(file), key)
	if err != nil {
		t.Fatal(err)
	}
	if v.Header.Index != st.Index || v.Header.ElectionID != "e-backup" || v.Header.NodeID != "dc1-a" || v.Header.Term != 3 {
		t.Errorf("header %+v", v.Header)
	}
	if !bytes.Equal(v.Summary.Digest, st.Digest) {
		t.Errorf("archive digest %x, the state machine's own digest %x", v.Summary.Digest, st.Digest)
	}
	if v.Summary.Voters != 3000 || v.Summary.Ballots != 300 || v.Summary.Emargements != 300 || v.Summary.Size != uint64(len(st.Stream)) {
		t.Errorf("summary %+v", v.Summary)
	}
	if v.Bytes != int64(len(file)) {
		t.Errorf("verified %d bytes of %d", v.Bytes, len(file))
	}
	f, err := CheckFraming(bytes.NewReader(file))
	if err != nil || f.Bytes != int64(len(file)) || f.Chunks < 2 {
		t.Errorf("CheckFraming = %+v, %v", f, err)
	}
}

func TestReaderChunkBoundaries(t *testing.T) {
	key := testKey(t, "k")
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3 * ChunkSize} {
		data := bytes.Repeat([]byte{0x5a}, size)
		var out bytes.Buffer
		w, _, err := NewWriter(&out, key, Header{ElectionID: "e", Index: 1, NodeID: "n"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(Summary{Records: 7}); err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(bytes.NewReader(out.Bytes()), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: read %d bytes, %v", size, len(got), err)
		}
		if s := r.Summary(); s.Size != uint64(size) || s.Records != 7 {
			t.Errorf("size %d: summary %+v", size, s)
		}
	}
}

func TestWrongKeyIsNamed(t *testing.T) {
	st := makeState(t, 10, 2)
	file := seal(t, st, testKey(t, "backup-1"))
	sameIDOtherBytes := testKey(t, "backup-1")
	sameIDOtherBytes.key[31] ^= 1
	pass, err := Passphrase([]byte("correct horse battery"), KDF{Time: 1, MemoryKiB: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		key  *Secret
		want string
	}{
		{"other key", testKey(t, "backup-2"), `sealed with backup key "backup-1", but the key given is "backup-2"`},
		{"same id, other bytes", sameIDOtherBytes, `backup key "backup-1" does not open this archive`},
		{"passphrase for a key", pass, `sealed with backup key "backup-1", but a passphrase was given`},
	}
	for _, c := range cases {
		_, err := Verify(bytes.NewReader(file), c.key)
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrWrongKey saying %q", c.name, err, c.want)
		}
	}
}

func TestPassphraseRoundTrip(t *testing.T) {
	st := makeState(t, 10, 2)
	cheap := KDF{Time: 1, MemoryKiB: 64, Threads: 1}
	pass, err := Passphrase([]byte("correct horse battery\n"), cheap)
	if err != nil {
		t.Fatal(err)
	}
	file := seal(t, st, pass)
	again, _ := Passphrase([]byte("correct horse battery"), cheap)
	v, err := Verify(bytes.NewReader(file), again)
	if err != nil || v.Header.Key.Kind != KindPassphrase || v.Header.Key.KDF == nil {
		t.Fatalf("verify with the same passphrase: %+v, %v", v.Header.Key, err)
	}
	wrong, _ := Passphrase([]byte("incorrect horse battery"), cheap)
	if _, err := Verify(bytes.NewReader(file), wrong); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Passphrase([]byte("short"), cheap); !errors.Is(err, ErrKey) {
		t.Fatalf("short passphrase accepted: %v", err)
	}
}

// TestTruncatedArchivesAreRefused cuts the archive at many points: the reader must never
// return io.EOF, and the error must say the file is truncated.
func TestTruncatedArchivesAreRefused(t *testing.T) {
	st := makeState(t, 2000, 100)
	key := testKey(t, "k")
	file := seal(t, st, key)
	for _, cut := range cutPoints(len(file) - 1) {
		_, err := Verify(bytes.NewReader(file[:cut]), key)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated", cut, len(file), err)
		}
		if _, err := CheckFraming(bytes.NewReader(file[:cut])); !errors.Is(err, ErrTruncated) {
			t.Fatalf("CheckFraming cut at %d: %v", cut, err)
		}
	}
}

// TestFlippedBytesAreRefused flips one bit at many offsets: header, chunks, summary, checksum.
func TestFlippedBytesAreRefused(t *testing.T) {
	st := makeState(t, 2000, 100)
	key := testKey(t, "k")
	file := seal(t, st, key)
	for _, at := range cutPoints(len(file) - 1) {
		bad := bytes.Clone(file)
		bad[at] ^= 0x10
		_, err := Verify(bytes.NewReader(bad), key)
		if err == nil {
			t.Fatalf("a flipped bit at byte %d of %d went unnoticed", at, len(file))
		}
		if !anyOf(err, ErrCorrupt, ErrDecrypt, ErrTruncated, ErrNotArchive, ErrVersion) {
			t.Fatalf("flip at %d: %v is not a corruption error", at, err)
		}
		if _, err := CheckFraming(bytes.NewReader(bad)); err == nil {
			t.Fatalf("CheckFraming missed a flipped bit at byte %d", at)
		}
	}
}

func TestTrailingBytesAreRefused(t *testing.T) {
	st := makeState(t, 10, 1)
	key := testKey(t, "k")
	file := append(seal(t, st, key), 0)
	if _, err := Verify(bytes.NewReader(file), key); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// TestSaveRefusesAnIncompleteStream: a state stream cut short leaves an archive without its
// end, which no reader accepts.
func TestSaveRefusesAnIncompleteStream(t *testing.T) {
	st := makeState(t, 100, 10)
	key := testKey(t, "k")
	var out bytes.Buffer
	h := Header{ElectionID: "e", Index: st.Index, NodeID: "n"}
	_, _, err := Save(&out, bytes.NewReader(st.Stream[:len(st.Stream)-10]), key, h)
	if !errors.Is(err, ErrSnapshot) {
		t.Fatalf("Save of a truncated stream: %v", err)
	}
	if _, err := Verify(bytes.NewReader(out.Bytes()), key); err == nil {
		t.Fatal("the partial archive verifies")
	}
	h.Index++
	if _, _, err := Save(io.Discard, bytes.NewReader(st.Stream), key, h); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("Save with the wrong index: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey("backup-e-1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sub", "backup.key")
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, k); err == nil {
		t.Fatal("an existing key file was overwritten")
	}
	got, err := LoadKeyFile(path)
	if err != nil || got.Text() != k.Text() || got.ID() != "backup-e-1" {
		t.Fatalf("LoadKeyFile = %v, %v", got, err)
	}
	if strings.Contains(k.String()+k.GoString(), k.Text()[len(keyPrefix)+12:]) {
		t.Fatal("String prints the key material")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path); !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("a world-readable key file: %v", err)
	}
	for _, bad := range []string{"", "urne-kek-v1:a:AAAA", keyPrefix + ":bad id:AAAA", keyPrefix + ":a:notbase64"} {
		if _, err := ParseKey([]byte(bad)); !errors.Is(err, ErrKey) {
			t.Errorf("ParseKey(%q) = %v", bad, err)
		}
	}
}

func TestHeaderWithoutKeyAndOtherFiles(t *testing.T) {
	st := makeState(t, 10, 1)
	file := seal(t, st, testKey(t, "k"))
	h, err := ReadHeader(bytes.NewReader(file))
	if err != nil || h.Index != st.Index || !h.TakenAt.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("ReadHeader = %+v, %v", h, err)
	}
	if _, err := ReadHeader(strings.NewReader("PK\x03\x04 a zip file, not an archive")); !errors.Is(err, ErrNotArchive) {
		t.Fatalf("a zip file: %v", err)
	}
	bad := bytes.Clone(file)
	bad[len(magic)+3] = 9
	if _, err := ReadHeader(bytes.NewReader(bad)); !errors.Is(err, ErrVersion) {
		t.Fatalf("format 9: %v", err)
	}
}

// cutPoints returns offsets spread over every region of a file of n bytes.
func cutPoints(n int) []int {
	pts := []int{0, 1, 7, 8, 11, 12, 13, 16, 17, 40, 100, 200, 300}
	for i := 1; i < 40; i++ {
		pts = append(pts, n*i/40)
	}
	for i := 1; i <= 100; i++ {
		pts = append(pts, n-i)
	}
	pts = append(pts, ChunkSize+prefixSize, ChunkSize+prefixSize+300, n)
	var out []int
	for _, p := range pts {
		if p >= 0 && p <= n {
			out = append(out, p)
		}
	}
	return out
}

func anyOf(err error, sentinels ...error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzBackupReader(f *testing.F) {
	st := makeState(f, 20, 3)
	key := testKey(f, "fuzz")
	file := seal(f, st, key)
	f.Add(file)
	f.Add(file[:len(file)/2])
	f.Add(file[:prefixSize+20])
	flipped := bytes.Clone(file)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped)
	f.Add([]byte(magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), key)
		if err == nil {
			if _, err := io.Copy(io.Discard, r); err == nil {
				// Whatever reads to the end under the key must also pass the keyless checks.
				if _, err := CheckFraming(bytes.NewReader(data)); err != nil {
					t.Fatalf("read to the end, but CheckFraming says %v", err)
				}
			}
		}
		_, _ = CheckFraming(bytes.NewReader(data))
		_, _ = ReadHeader(bytes.NewReader(data))
		_, _ = ReadState(bytes.NewReader(data))
	})
}
