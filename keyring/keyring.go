package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Keyring holds a node's data encryption keys, one of them primary, persisted in one file
// sealed by the key-encryption key. Seal, Open and the stream functions read an immutable key
// set through an atomic pointer and take no lock; Rotate and Rekey serialize on a mutex and
// persist the new file before publishing the new set.
type Keyring struct {
	path string
	set  atomic.Pointer[keySet]

	mu  sync.Mutex // serializes Rotate and Rekey; guards kek
	kek *KEK
}

// keySet is an immutable snapshot of the data keys with their AEADs built once.
type keySet struct {
	keys    []dataKey // ascending ids
	primary uint32
	aeads   map[uint32]cipher.AEAD
	seal    cipher.AEAD // aeads[primary]
}

func newKeySet(primary uint32, keys []dataKey) *keySet {
	s := &keySet{keys: keys, primary: primary, aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for _, k := range keys {
		s.aeads[k.id] = dataKeyAEAD(k.key)
	}
	s.seal = s.aeads[primary]
	return s
}

func dataKeyAEAD(key [KeySize]byte) cipher.AEAD {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(fmt.Sprintf("keyring: AES with a %d-byte key: %v", KeySize, err)) // cannot happen
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("keyring: GCM: %v", err)) // cannot happen
	}
	return aead
}

func newDataKey(id uint32) dataKey {
	k := dataKey{id: id}
	_, _ = rand.Read(k.key[:]) // crypto/rand.Read never fails (it aborts the program instead)
	return k
}

// Create makes a new keyring at path with one data key (id 1) and seals it under kek. It
// refuses to overwrite an existing file.
func Create(path string, kek *KEK) (*Keyring, error) {
	keys := []dataKey{newDataKey(1)}
	if err := createFile(path, encodeKeyringFile(kek, 1, keys)); err != nil {
		return nil, err
	}
	return newKeyring(path, kek, newKeySet(1, keys)), nil
}

// Open reads the keyring at path with kek. It never writes to the file. A missing file gives
// ErrNoKeyring; a key of another id gives ErrKEKMismatch; the right id with wrong bytes (or a
// damaged file) gives ErrKEKWrong.
func Open(path string, kek *KEK) (*Keyring, error) {
	data, err := readKeyringFile(path)
	if err != nil {
		return nil, err
	}
	primary, keys, err := decodeKeyringFile(path, data, kek)
	if err != nil {
		return nil, err
	}
	return newKeyring(path, kek, newKeySet(primary, keys)), nil
}

func newKeyring(path string, kek *KEK, set *keySet) *Keyring {
	k := &Keyring{path: path, kek: kek}
	k.set.Store(set)
	return k
}

// Path returns the keyring file's path.
func (k *Keyring) Path() string { return k.path }

// KEKID returns the id of the key-encryption key the file is sealed with.
func (k *Keyring) KEKID() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.kek.id
}

// PrimaryID returns the id of the data key that seals new data.
func (k *Keyring) PrimaryID() uint32 { return k.set.Load().primary }

// KeyIDs returns the ids of every data key held, ascending.
func (k *Keyring) KeyIDs() []uint32 {
	keys := k.set.Load().keys
	ids := make([]uint32, len(keys))
	for i, dk := range keys {
		ids[i] = dk.id
	}
	return ids
}

// Rotate adds a new data key and makes it primary; older keys stay for reading. The file is
// replaced on disk before the new key seals anything, so no ciphertext can outlive its key.
func (k *Keyring) Rotate() (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.set.Load()
	last := old.keys[len(old.keys)-1].id
	if last == math.MaxUint32 || len(old.keys) >= maxDataKeys {
		return 0, fmt.Errorf("rotate keyring %s: no data key id left", k.path)
	}
	keys := append(append([]dataKey(nil), old.keys...), newDataKey(last+1))
	if err := replaceFile(k.path, encodeKeyringFile(k.kek, last+1, keys)); err != nil {
		return 0, fmt.Errorf("rotate keyring: %w", err)
	}
	k.set.Store(newKeySet(last+1, keys))
	return last + 1, nil
}

// Rekey re-seals the keyring file under a new key-encryption key (KEK rotation). The data
// keys do not change, so no data needs re-encrypting.
func (k *Keyring) Rekey(kek *KEK) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	set := k.set.Load()
	if err := replaceFile(k.path, encodeKeyringFile(kek, set.primary, set.keys)); err != nil {
		return fmt.Errorf("rekey keyring: %w", err)
	}
	k.kek = kek
	return nil
}

// Without returns a keyring that holds every key but ids, in memory only: a caller checks
// with it that nothing it still needs is sealed under keys it is about to destroy.
func (k *Keyring) Without(ids []uint32) (*Keyring, error) {
	set, err := k.set.Load().without(ids)
	if err != nil {
		return nil, err
	}
	return newKeyring("", k.kek, set), nil
}

// Destroy removes the data keys ids from the keyring file and from memory: whatever they
// sealed, wherever a copy of it lies, can no longer be opened (crypto-erasure). The primary
// key cannot be destroyed; rotate first.
func (k *Keyring) Destroy(ids []uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	set, err := k.set.Load().without(ids)
	if err != nil {
		return err
	}
	if err := replaceFile(k.path, encodeKeyringFile(k.kek, set.primary, set.keys)); err != nil {
		return fmt.Errorf("destroy data keys: %w", err)
	}
	k.set.Store(set)
	return nil
}

func (s *keySet) without(ids []uint32) (*keySet, error) {
	var keep []dataKey
	for _, dk := range s.keys {
		if !slices.Contains(ids, dk.id) {
			keep = append(keep, dk)
			continue
		}
		if dk.id == s.primary {
			return nil, fmt.Errorf("keyring: data key %d is primary and cannot be destroyed; rotate first", dk.id)
		}
	}
	return newKeySet(s.primary, keep), nil
}
