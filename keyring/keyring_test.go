package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func mustKEK(t testing.TB, id string) *KEK {
	t.Helper()
	k, err := GenerateKEK(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestKeyring creates a keyring in a fresh directory.
func newTestKeyring(t testing.TB) (*Keyring, string, *KEK) {
	t.Helper()
	kek := mustKEK(t, "kek-1")
	path := filepath.Join(t.TempDir(), "keyring")
	kr, err := Create(path, kek)
	if err != nil {
		t.Fatal(err)
	}
	return kr, path, kek
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateOpenRoundTrip(t *testing.T) {
	kr, path, kek := newTestKeyring(t)
	if kr.PrimaryID() != 1 || !slices.Equal(kr.KeyIDs(), []uint32{1}) {
		t.Fatalf("new keyring: primary %d ids %v", kr.PrimaryID(), kr.KeyIDs())
	}
	ct := kr.Seal([]byte("fsm/voter/1"), []byte("secret"))
	again, err := Open(path, kek)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := again.Open([]byte("fsm/voter/1"), ct)
	if err != nil || string(pt) != "secret" {
		t.Fatalf("reopened keyring Open = %q, %v", pt, err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode %04o; want 0600", info.Mode().Perm())
	}
	if bytes.Contains(readFile(t, path), again.set.Load().keys[0].key[:]) {
		t.Fatal("keyring file holds a data key in clear")
	}
}

func TestCreateRefusesExistingFile(t *testing.T) {
	_, path, kek := newTestKeyring(t)
	before := readFile(t, path)
	if _, err := Create(path, kek); !errors.Is(err, ErrKeyringExists) {
		t.Fatalf("Create over an existing keyring = %v; want ErrKeyringExists", err)
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("Create changed an existing keyring")
	}
	assertNoTempFiles(t, filepath.Dir(path))
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "keyring"), mustKEK(t, "kek-1"))
	if !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("Open of a missing file = %v; want ErrNoKeyring", err)
	}
}

func TestOpenWithWrongKEK(t *testing.T) {
	_, path, _ := newTestKeyring(t)
	before := readFile(t, path)
	tests := []struct {
		name string
		kek  *KEK
		kind error
		msg  string
	}{
		{"other id", mustKEK(t, "kek-2"), ErrKEKMismatch,
			fmt.Sprintf(`keyring %s was sealed with key-encryption key "kek-1", but the configured key is "kek-2"`, path)},
		{"same id, other bytes", mustKEK(t, "kek-1"), ErrKEKWrong,
			fmt.Sprintf(`key-encryption key "kek-1" does not open keyring %s: wrong key or corrupted file`, path)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(path, tt.kek)
			if !errors.Is(err, tt.kind) || err.Error() != tt.msg {
				t.Fatalf("Open = %v\nwant %s", err, tt.msg)
			}
			if !bytes.Equal(before, readFile(t, path)) {
				t.Fatal("a failed Open changed the keyring file")
			}
		})
	}
}

func TestOpenCorruptFile(t *testing.T) {
	_, path, kek := newTestKeyring(t)
	good := readFile(t, path)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		kind   error
	}{
		{"flipped payload byte", func(b []byte) []byte { b[len(b)-20] ^= 1; return b }, ErrKEKWrong},
		{"flipped tag byte", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrKEKWrong},
		{"truncated payload", func(b []byte) []byte { return b[:len(b)-1] }, ErrKEKWrong},
		{"truncated in nonce", func(b []byte) []byte { return b[:len(fileMagic)+1+5+3] }, ErrKeyringCorrupt},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrKeyringCorrupt},
		{"empty", func([]byte) []byte { return nil }, ErrKeyringCorrupt},
		{"id length past end", func(b []byte) []byte { b[len(fileMagic)] = 200; return b[:40] }, ErrKeyringCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keyring")
			if err := os.WriteFile(p, tt.mutate(bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(p, kek); !errors.Is(err, tt.kind) {
				t.Fatalf("Open = %v; want %v", err, tt.kind)
			}
		})
	}
}

func TestRotate(t *testing.T) {
	kr, path, kek := newTestKeyring(t)
	aad := []byte("fsm/ballot/7")
	oldCT := kr.Seal(aad, []byte("before rotation"))
	id, err := kr.Rotate()
	if err != nil || id != 2 || kr.PrimaryID() != 2 || !slices.Equal(kr.KeyIDs(), []uint32{1, 2}) {
		t.Fatalf("Rotate = %d, %v; primary %d ids %v", id, err, kr.PrimaryID(), kr.KeyIDs())
	}
	newCT := kr.Seal(aad, []byte("after rotation"))
	if keyIDOf(newCT) != 2 || keyIDOf(oldCT) != 1 {
		t.Fatalf("key ids: old %d new %d", keyIDOf(oldCT), keyIDOf(newCT))
	}
	reopened, err := Open(path, kek)
	if err != nil || reopened.PrimaryID() != 2 {
		t.Fatalf("reopen after rotation: %v, primary %d", err, reopened.PrimaryID())
	}
	for ct, want := range map[string]string{string(oldCT): "before rotation", string(newCT): "after rotation"} {
		if pt, err := reopened.Open(aad, []byte(ct)); err != nil || string(pt) != want {
			t.Fatalf("Open after reopen = %q, %v; want %q", pt, err, want)
		}
	}
	assertNoTempFiles(t, filepath.Dir(path))
}

func keyIDOf(ct []byte) uint32 {
	return uint32(ct[1])<<24 | uint32(ct[2])<<16 | uint32(ct[3])<<8 | uint32(ct[4])
}

func TestRekey(t *testing.T) {
	kr, path, oldKEK := newTestKeyring(t)
	ct := kr.Seal(nil, []byte("kept"))
	newKEK := mustKEK(t, "kek-2")
	if err := kr.Rekey(newKEK); err != nil {
		t.Fatal(err)
	}
	if kr.KEKID() != "kek-2" {
		t.Fatalf("KEKID after Rekey = %q", kr.KEKID())
	}
	if _, err := Open(path, oldKEK); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("Open with the old KEK after Rekey = %v; want ErrKEKMismatch", err)
	}
	reopened, err := Open(path, newKEK)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := reopened.Open(nil, ct); err != nil || string(pt) != "kept" {
		t.Fatalf("data sealed before Rekey: %q, %v", pt, err)
	}
	if _, err := kr.Rotate(); err != nil { // Rotate must now seal under the new KEK
		t.Fatal(err)
	}
	if _, err := Open(path, newKEK); err != nil {
		t.Fatalf("Open after Rekey then Rotate: %v", err)
	}
}

func TestConcurrentSealAndRotate(t *testing.T) {
	kr, path, kek := newTestKeyring(t)
	const sealers, perSealer, rotations = 4, 300, 5
	var wg sync.WaitGroup
	errs := make(chan error, sealers+1)
	for g := range sealers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			aad := fmt.Appendf(nil, "g%d", g)
			for i := range perSealer {
				msg := fmt.Appendf(nil, "m%d", i)
				if pt, err := kr.Open(aad, kr.Seal(aad, msg)); err != nil || !bytes.Equal(pt, msg) {
					errs <- fmt.Errorf("round trip during rotation: %q, %v", pt, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range rotations {
			if _, err := kr.Rotate(); err != nil {
				errs <- err
				return
			}
			_ = kr.KeyIDs()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	reopened, err := Open(path, kek)
	if err != nil || reopened.PrimaryID() != rotations+1 {
		t.Fatalf("reopen: %v, primary %d; want %d", err, reopened.PrimaryID(), rotations+1)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "keyring" {
			t.Fatalf("unexpected file left in %s: %s", dir, e.Name())
		}
	}
}

// TestDestroyIsCryptoErasure: once a data key is destroyed, what it sealed does not open,
// neither with the keyring in memory nor with the file reopened under the KEK.
func TestDestroyIsCryptoErasure(t *testing.T) {
	kek, err := GenerateKEK("erase")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keyring")
	k, err := Create(path, kek)
	if err != nil {
		t.Fatal(err)
	}
	old := k.Seal([]byte("aad"), []byte("voter roll"))
	if _, err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := k.Destroy([]uint32{k.PrimaryID()}); err == nil {
		t.Fatal("the primary key was destroyed")
	}
	fresh := k.Seal([]byte("aad"), []byte("kept"))
	view, err := k.Without([]uint32{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := view.Open([]byte("aad"), old); err == nil {
		t.Fatal("the view without key 1 opens what key 1 sealed")
	}
	if _, err := k.Open([]byte("aad"), old); err != nil {
		t.Fatal("Without changed the keyring itself")
	}
	if err := k.Destroy([]uint32{1}); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(path, kek)
	if err != nil {
		t.Fatal(err)
	}
	for _, kr := range []*Keyring{k, reopened} {
		if _, err := kr.Open([]byte("aad"), old); err == nil {
			t.Fatal("a destroyed key still opens its data")
		}
		if got, err := kr.Open([]byte("aad"), fresh); err != nil || string(got) != "kept" {
			t.Fatalf("data under the kept key: %q, %v", got, err)
		}
	}
}
