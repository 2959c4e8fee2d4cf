package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Keyring file layout:
//
//	magic "URNEKR01" | kek id length (1 byte) | kek id | nonce (12) | AES-256-GCM(payload)
//
// The associated data is everything before the nonce: the magic names the purpose and format,
// and the KEK id binds the file to one key. The payload lists the data keys:
//
//	primary id (4) | count (4) | count × (id (4) | key (32))
const (
	fileMagic      = "URNEKR01"
	fileNonceSize  = 12
	keyRecordSize  = 4 + KeySize
	maxDataKeys    = 1 << 16
	maxKeyringFile = 64 + maxKEKIDLen + fileNonceSize + 8 + maxDataKeys*keyRecordSize + 16
)

// dataKey is one data encryption key and its id.
type dataKey struct {
	id  uint32
	key [KeySize]byte
}

// encodeKeyringFile seals the data keys under the KEK.
func encodeKeyringFile(kek *KEK, primary uint32, keys []dataKey) []byte {
	header := fileHeader(kek.id)
	payload := make([]byte, 8, 8+len(keys)*keyRecordSize)
	binary.BigEndian.PutUint32(payload[0:4], primary)
	binary.BigEndian.PutUint32(payload[4:8], uint32(len(keys)))
	for _, k := range keys {
		payload = binary.BigEndian.AppendUint32(payload, k.id)
		payload = append(payload, k.key[:]...)
	}
	out := append(header, make([]byte, fileNonceSize)...)
	nonce := out[len(header):]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (it aborts the program instead)
	return kekAEAD(kek).Seal(out, nonce, payload, header)
}

func fileHeader(kekID string) []byte {
	header := make([]byte, 0, len(fileMagic)+1+len(kekID)+fileNonceSize)
	header = append(header, fileMagic...)
	header = append(header, byte(len(kekID)))
	return append(header, kekID...)
}

func kekAEAD(kek *KEK) cipher.AEAD {
	block, err := aes.NewCipher(kek.key[:])
	if err != nil {
		panic(fmt.Sprintf("keyring: AES with a %d-byte key: %v", KeySize, err)) // cannot happen
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("keyring: GCM: %v", err)) // cannot happen
	}
	return aead
}

// decodeKeyringFile checks the header against the KEK before trying to open the payload, so a
// wrong key is reported by id rather than as an opaque authentication failure.
func decodeKeyringFile(path string, data []byte, kek *KEK) (primary uint32, keys []dataKey, err error) {
	kekID, rest, err := splitFileHeader(path, data)
	if err != nil {
		return 0, nil, err
	}
	if kekID != kek.id {
		return 0, nil, errorf(ErrKEKMismatch, "keyring %s was sealed with key-encryption key %q, but the configured key is %q", path, kekID, kek.id)
	}
	header := data[:len(data)-len(rest)]
	if len(rest) < fileNonceSize {
		return 0, nil, errorf(ErrKeyringCorrupt, "keyring %s is truncated", path)
	}
	payload, err := kekAEAD(kek).Open(nil, rest[:fileNonceSize], rest[fileNonceSize:], header)
	if err != nil {
		return 0, nil, errorf(ErrKEKWrong, "key-encryption key %q does not open keyring %s: wrong key or corrupted file", kek.id, path)
	}
	return decodePayload(path, payload)
}

func splitFileHeader(path string, data []byte) (kekID string, rest []byte, err error) {
	if len(data) < len(fileMagic)+1 || string(data[:len(fileMagic)]) != fileMagic {
		return "", nil, errorf(ErrKeyringCorrupt, "%s is not an urne keyring file (bad magic)", path)
	}
	n := int(data[len(fileMagic)])
	rest = data[len(fileMagic)+1:]
	if n == 0 || n > len(rest) {
		return "", nil, errorf(ErrKeyringCorrupt, "keyring %s has a malformed key-encryption key id", path)
	}
	kekID = string(rest[:n])
	if validateKEKID(kekID) != nil {
		return "", nil, errorf(ErrKeyringCorrupt, "keyring %s has a malformed key-encryption key id", path)
	}
	return kekID, rest[n:], nil
}

func decodePayload(path string, payload []byte) (primary uint32, keys []dataKey, err error) {
	corrupt := func(why string) error { return errorf(ErrKeyringCorrupt, "keyring %s: %s", path, why) }
	if len(payload) < 8 {
		return 0, nil, corrupt("payload too short")
	}
	primary = binary.BigEndian.Uint32(payload[0:4])
	count := binary.BigEndian.Uint32(payload[4:8])
	records := payload[8:]
	if count == 0 || count > maxDataKeys || uint64(len(records)) != uint64(count)*keyRecordSize {
		return 0, nil, corrupt("bad data key count")
	}
	keys = make([]dataKey, count)
	for i := range keys {
		rec := records[i*keyRecordSize : (i+1)*keyRecordSize]
		keys[i].id = binary.BigEndian.Uint32(rec[:4])
		copy(keys[i].key[:], rec[4:])
	}
	if err := checkKeyIDs(primary, keys); err != nil {
		return 0, nil, corrupt(err.Error())
	}
	return primary, keys, nil
}

// checkKeyIDs requires ids that are non-zero and strictly increasing, with the primary among them.
func checkKeyIDs(primary uint32, keys []dataKey) error {
	found := false
	for i, k := range keys {
		if k.id == 0 || (i > 0 && k.id <= keys[i-1].id) {
			return errors.New("data key ids out of order")
		}
		found = found || k.id == primary
	}
	if !found {
		return fmt.Errorf("primary data key %d is missing", primary)
	}
	return nil
}

// readKeyringFile reads the file without ever writing to it.
func readKeyringFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(ErrNoKeyring, "no keyring at %s", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	if info.Size() > maxKeyringFile {
		return nil, errorf(ErrKeyringCorrupt, "keyring %s is %d bytes, more than a keyring can be", path, info.Size())
	}
	data := make([]byte, info.Size())
	if _, err := f.ReadAt(data, 0); err != nil && len(data) > 0 {
		return nil, fmt.Errorf("read keyring %s: %w", path, err)
	}
	return data, nil
}

// replaceFile writes data to path atomically: a reader sees the old file or the new one, and
// after a crash the new one is on disk once this returns.
func replaceFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace keyring %s: %w", path, err)
	}
	return syncDir(path)
}

// createFile is replaceFile that refuses to overwrite: a hard link fails if path exists, so two
// concurrent creators cannot both win.
func createFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errorf(ErrKeyringExists, "keyring %s already exists; refusing to overwrite it", path)
		}
		return fmt.Errorf("create keyring %s: %w", path, err)
	}
	return syncDir(path)
}

func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write keyring %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("write keyring %s: %w", path, err)
	}
	return f.Name(), nil
}

// syncDir makes a rename or a new file in the directory durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}
