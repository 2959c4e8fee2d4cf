package keyring

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/iotest"
)

// plaintextOf returns n bytes that are easy to tell apart, so misplaced chunks would show.
func plaintextOf(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func encryptStream(t testing.TB, kr *Keyring, aad, pt []byte, piece int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := kr.NewWriter(&out, aad)
	for rest := pt; len(rest) > 0; {
		n := min(piece, len(rest))
		if m, err := w.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write = %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func decryptStream(kr *Keyring, aad, ct []byte) ([]byte, error) {
	r, err := kr.NewReader(bytes.NewReader(ct), aad)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestStreamRoundTrip(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	aad := []byte("raft-snapshot/2-10-123")
	sizes := []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 7}
	for _, size := range sizes {
		for _, piece := range []int{1 << 20, 4096, 1000} {
			pt := plaintextOf(size)
			ct := encryptStream(t, kr, aad, pt, piece)
			if int64(len(ct)) != CiphertextSize(int64(size)) {
				t.Fatalf("size %d: ciphertext %d bytes, CiphertextSize says %d", size, len(ct), CiphertextSize(int64(size)))
			}
			if n, err := PlaintextSize(int64(len(ct))); err != nil || n != int64(size) {
				t.Fatalf("size %d: PlaintextSize = %d, %v", size, n, err)
			}
			got, err := decryptStream(kr, aad, ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d piece %d: decrypt = %d bytes, %v", size, piece, len(got), err)
			}
		}
	}
}

// TestStreamReaderContract runs the standard io.Reader checks (small reads, EOF behaviour).
func TestStreamReaderContract(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	pt := plaintextOf(2*ChunkSize + 100)
	r, err := kr.NewReader(bytes.NewReader(encryptStream(t, kr, nil, pt, 1<<20)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(r, pt); err != nil {
		t.Fatal(err)
	}
}

func TestStreamTampering(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	aad := []byte("backup/1")
	pt := plaintextOf(3*ChunkSize + 500)
	ct := encryptStream(t, kr, aad, pt, 1<<20)
	chunk := func(i int) (int, int) { return streamHeaderLen + i*sealedChunk, streamHeaderLen + (i+1)*sealedChunk }
	flip := func(i int) []byte { c := bytes.Clone(ct); c[i] ^= 0x80; return c }
	swap := func(a, b int) []byte {
		c := bytes.Clone(ct)
		as, ae := chunk(a)
		bs, be := chunk(b)
		copy(c[as:ae], ct[bs:be])
		copy(c[bs:be], ct[as:ae])
		return c
	}
	_, lastStart := chunk(2)
	tests := []struct {
		name string
		ct   []byte
		aad  []byte
		kind error
	}{
		{"empty", nil, aad, ErrTruncated},
		{"cut in header", ct[:5], aad, ErrTruncated},
		{"header only", ct[:streamHeaderLen], aad, ErrTruncated},
		{"cut in first chunk", ct[:streamHeaderLen+100], aad, ErrDecrypt},
		{"cut at chunk boundary", ct[:lastStart], aad, ErrTruncated},
		{"cut in final chunk", ct[:len(ct)-1], aad, ErrDecrypt},
		{"cut to a tag's length", ct[:lastStart+tagSize-1], aad, ErrTruncated},
		{"final chunk dropped", ct[:lastStart], aad, ErrTruncated},
		{"trailing byte", append(bytes.Clone(ct), 0), aad, ErrDecrypt},
		{"chunks swapped", swap(0, 1), aad, ErrDecrypt},
		{"flipped version", flip(0), aad, ErrVersion},
		{"flipped key id", flip(4), aad, ErrUnknownKeyID},
		{"flipped stream id", flip(7), aad, ErrDecrypt},
		{"flipped byte in middle chunk", flip(streamHeaderLen + sealedChunk + 10), aad, ErrDecrypt},
		{"flipped tag of final chunk", flip(len(ct) - 1), aad, ErrDecrypt},
		{"other aad", ct, []byte("backup/2"), ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decryptStream(kr, tt.aad, tt.ct)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("decrypt = %d bytes, %v; want %v", len(got), err, tt.kind)
			}
		})
	}
}

// TestStreamReplacedFinalChunk splices the final chunk of another stream under the same key:
// the stream id in every nonce must make it fail.
func TestStreamReplacedFinalChunk(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	pt := plaintextOf(ChunkSize + 10)
	a, b := encryptStream(t, kr, nil, pt, 1<<20), encryptStream(t, kr, nil, pt, 1<<20)
	spliced := append(bytes.Clone(a[:streamHeaderLen+sealedChunk]), b[streamHeaderLen+sealedChunk:]...)
	if _, err := decryptStream(kr, nil, spliced); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("decrypt of a spliced stream = %v; want ErrDecrypt", err)
	}
}

func TestStreamAfterRotation(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	old := encryptStream(t, kr, nil, []byte("old stream"), 100)
	if _, err := kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	fresh := encryptStream(t, kr, nil, []byte("new stream"), 100)
	if keyIDOf(old) != 1 || keyIDOf(fresh) != 2 {
		t.Fatalf("stream key ids: %d, %d", keyIDOf(old), keyIDOf(fresh))
	}
	for _, ct := range [][]byte{old, fresh} {
		if _, err := decryptStream(kr, nil, ct); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStreamWriterAfterClose(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	w := kr.NewWriter(io.Discard, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v; want ErrClosed", err)
	}
}

func TestStreamWriterReportsWriteErrors(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	boom := errors.New("disk full")
	w := kr.NewWriter(failingWriter{boom}, nil)
	if _, err := w.Write(make([]byte, ChunkSize)); !errors.Is(err, boom) {
		t.Fatalf("Write = %v; want the underlying error", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close = %v; want the first error again", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestStreamSizes(t *testing.T) {
	for n := int64(0); n < 3*ChunkSize+3; n += 997 {
		for _, size := range []int64{n, ChunkSize*(n%4) - 1, ChunkSize * (n % 4)} {
			if size < 0 {
				continue
			}
			got, err := PlaintextSize(CiphertextSize(size))
			if err != nil || got != size {
				t.Fatalf("PlaintextSize(CiphertextSize(%d)) = %d, %v", size, got, err)
			}
		}
	}
	for _, bad := range []int64{-1, 0, streamHeaderLen, streamHeaderLen + tagSize - 1, streamHeaderLen + sealedChunk + tagSize - 1} {
		if _, err := PlaintextSize(bad); !errors.Is(err, ErrStreamSize) {
			t.Errorf("PlaintextSize(%d) = %v; want ErrStreamSize", bad, err)
		}
	}
}

// TestStreamMemoryIsBounded streams 16 MiB through a writer and a reader and checks that the
// bytes allocated stay near one chunk each, not the stream's size.
func TestStreamMemoryIsBounded(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	const size = 16 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pr, pw := io.Pipe()
	go func() {
		w := kr.NewWriter(pw, nil)
		_, err := io.CopyN(w, zeroReader{}, size)
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, err := kr.NewReader(pr, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("copied %d, %v", n, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2<<20 {
		t.Fatalf("streaming %d bytes allocated %d bytes", size, grew)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
