package keyring

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the ciphertext decoder: it must never panic, and must
// accept nothing that Seal did not produce under the same associated data.
func FuzzOpen(f *testing.F) {
	kr, _, _ := newTestKeyring(f)
	ct := kr.Seal([]byte("aad"), []byte("hello"))
	f.Add([]byte("aad"), ct)
	f.Add([]byte("aad"), ct[:SealOverhead])
	f.Add([]byte(""), []byte{sealVersion, 0, 0, 0, 1})
	f.Add([]byte("x"), bytes.Repeat([]byte{1}, 64))
	f.Fuzz(func(t *testing.T, aad, data []byte) {
		pt, err := kr.Open(aad, data)
		if err == nil && (!bytes.Equal(aad, []byte("aad")) || !bytes.Equal(data, ct) || string(pt) != "hello") {
			t.Fatalf("Open accepted a forged ciphertext: %x", data)
		}
	})
}

// FuzzReader feeds arbitrary bytes to the stream decoder: it must never panic, must end with
// an error or a clean EOF, and a clean EOF only for one of the genuine streams.
func FuzzReader(f *testing.F) {
	kr, _, _ := newTestKeyring(f)
	pt := plaintextOf(ChunkSize + 3)
	genuine := map[string][]byte{
		string(encryptStream(f, kr, nil, pt, 1<<20)): pt,
		string(encryptStream(f, kr, nil, nil, 1)):    nil,
	}
	for ct := range genuine {
		f.Add([]byte(ct))
		f.Add([]byte(ct)[:streamHeaderLen+tagSize])
	}
	f.Add([]byte{streamVersion, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := kr.NewReader(bytes.NewReader(data), nil)
		if err != nil {
			return
		}
		got, err := io.ReadAll(r)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		want, ok := genuine[string(data)]
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("reader accepted a forged stream of %d bytes", len(data))
		}
	})
}

// FuzzParseKEK checks the KEK parser never panics and that whatever it accepts prints back to
// the same canonical text.
func FuzzParseKEK(f *testing.F) {
	f.Add([]byte(testKeyText))
	f.Add([]byte(testKeyText + "\n"))
	f.Add([]byte("urne-kek-v1:a:"))
	f.Add([]byte("urne-kek-v1:a:b:c"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := ParseKEK(text)
		if err != nil {
			return
		}
		again, err := ParseKEK([]byte(k.Text()))
		if err != nil || again.id != k.id || again.key != k.key {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}
