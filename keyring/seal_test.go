package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	for _, size := range []int{0, 1, 15, 16, 17, 1024, 100_000} {
		pt := bytes.Repeat([]byte{'v'}, size)
		ct := kr.Seal([]byte("raft-log/1"), pt)
		if len(ct) != size+SealOverhead || ct[0] != sealVersion || keyIDOf(ct) != 1 {
			t.Fatalf("size %d: ciphertext length %d, version %d, key %d", size, len(ct), ct[0], keyIDOf(ct))
		}
		if bytes.Contains(ct, []byte("vvvvvvvv")) {
			t.Fatalf("size %d: ciphertext contains the plaintext", size)
		}
		got, err := kr.Open([]byte("raft-log/1"), ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: Open = %v", size, err)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	a, b := kr.Seal(nil, []byte("same")), kr.Seal(nil, []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestAppendSealKeepsPrefix(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	for _, dst := range [][]byte{[]byte("prefix:"), make([]byte, 3, 1000)} {
		prefix := bytes.Clone(dst)
		out := kr.AppendSeal(dst, []byte("aad"), []byte("payload"))
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatalf("AppendSeal changed the prefix: %q", out[:len(prefix)])
		}
		if pt, err := kr.Open([]byte("aad"), out[len(prefix):]); err != nil || string(pt) != "payload" {
			t.Fatalf("Open of appended ciphertext = %q, %v", pt, err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	aad := []byte("raft-log/9")
	ct := kr.Seal(aad, []byte("ballot"))
	flip := func(i int) []byte { c := bytes.Clone(ct); c[i] ^= 0x01; return c }
	tests := []struct {
		name string
		aad  []byte
		ct   []byte
		kind error
		msg  string
	}{
		{"other aad", []byte("raft-log/10"), ct, ErrDecrypt, `ciphertext for "raft-log/10" does not authenticate under key 1`},
		{"nil aad", nil, ct, ErrDecrypt, `ciphertext for "" does not authenticate under key 1`},
		{"version", aad, flip(0), ErrVersion, ""},
		{"key id", aad, flip(4), ErrUnknownKeyID, `ciphertext for "raft-log/9" is sealed with data key 0, which this keyring does not hold`},
		{"nonce", aad, flip(sealHeaderLen), ErrDecrypt, ""},
		{"body", aad, flip(sealHeaderLen + nonceSize), ErrDecrypt, ""},
		{"tag", aad, flip(len(ct) - 1), ErrDecrypt, ""},
		{"truncated", aad, ct[:len(ct)-1], ErrDecrypt, ""},
		{"short", aad, ct[:SealOverhead-1], ErrShortCiphertext, ""},
		{"empty", aad, nil, ErrShortCiphertext, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := kr.Open(tt.aad, tt.ct)
			if !errors.Is(err, tt.kind) || pt != nil {
				t.Fatalf("Open = %q, %v; want %v", pt, err, tt.kind)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Fatalf("message %q\nwant    %q", err, tt.msg)
			}
		})
	}
}

// TestKeyIDIsAuthenticated moves a ciphertext to another key id the keyring holds: it must fail
// authentication rather than be tried under a different key silently.
func TestKeyIDIsAuthenticated(t *testing.T) {
	kr, _, _ := newTestKeyring(t)
	ct := kr.Seal(nil, []byte("x"))
	if _, err := kr.Rotate(); err != nil {
		t.Fatal(err)
	}
	ct[4] = 2
	if _, err := kr.Open(nil, ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with a relabelled key id = %v; want ErrDecrypt", err)
	}
}

func BenchmarkSeal1KiB(b *testing.B) {
	kr, _, _ := newTestKeyring(b)
	pt, aad := make([]byte, 1024), []byte("fsm/ballot/123456")
	b.ReportAllocs()
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		_ = kr.Seal(aad, pt)
	}
}

func BenchmarkOpen1KiB(b *testing.B) {
	kr, _, _ := newTestKeyring(b)
	aad := []byte("fsm/ballot/123456")
	ct := kr.Seal(aad, make([]byte, 1024))
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		if _, err := kr.Open(aad, ct); err != nil {
			b.Fatal(err)
		}
	}
}
