package backup

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Key kinds recorded in an archive header.
const (
	KindKeyFile    = "key"
	KindPassphrase = "passphrase"
)

const (
	keyPrefix = "urne-backup-key-v1"
	keySize   = 32
	saltSize  = 16
	checkSize = 16
	// MinPassphrase is the shortest passphrase accepted, in bytes.
	MinPassphrase = 12
	maxKeyText    = 4096
	maxKeyIDLen   = 64
)

// KDF is the argon2id cost of a passphrase. Readers refuse costs above the limits below, so
// a crafted header cannot make them spend gigabytes or minutes.
type KDF struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF is the argon2id cost new archives sealed with a passphrase use (RFC 9106's second
// recommended option: 64 MiB, 3 passes).
var DefaultKDF = KDF{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

const (
	maxKDFTime   = 16
	maxKDFMemory = 1 << 20 // KiB: 1 GiB
)

func (k KDF) check() error {
	if k.Time == 0 || k.Time > maxKDFTime || k.MemoryKiB < 8*uint32(max(k.Threads, 1)) ||
		k.MemoryKiB > maxKDFMemory || k.Threads == 0 {
		return errorf(ErrCorrupt, "argon2id cost time=%d memory=%d KiB threads=%d is outside what this build accepts (time 1..%d, memory up to %d KiB)",
			k.Time, k.MemoryKiB, k.Threads, maxKDFTime, maxKDFMemory)
	}
	return nil
}

// Secret seals and opens archives: a backup key read from a key file, or a passphrase.
// It never prints its material.
type Secret struct {
	id   string         // key file id; empty for a passphrase
	key  *[keySize]byte // key file material
	pass []byte         // passphrase
	kdf  KDF            // cost used when sealing with the passphrase
}

// String names the secret without its material.
func (s *Secret) String() string {
	if s.key != nil {
		return fmt.Sprintf("backup key %q", s.id)
	}
	return "a passphrase"
}

// GoString keeps %#v from printing key material.
func (s *Secret) GoString() string { return s.String() }

// kind is the header's name for this kind of secret.
func (s *Secret) kind() string {
	if s.key != nil {
		return KindKeyFile
	}
	return KindPassphrase
}

// GenerateKey returns a new random backup key with the given id.
func GenerateKey(id string) (*Secret, error) {
	if err := checkKeyID(id); err != nil {
		return nil, err
	}
	var k [keySize]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails
	return &Secret{id: id, key: &k}, nil
}

// Passphrase returns a secret that derives archive keys from p with argon2id at cost kdf.
func Passphrase(p []byte, kdf KDF) (*Secret, error) {
	p = []byte(strings.TrimRight(string(p), "\r\n"))
	if len(p) < MinPassphrase {
		return nil, errorf(ErrKey, "the passphrase has %d bytes; at least %d are required", len(p), MinPassphrase)
	}
	if err := kdf.check(); err != nil {
		return nil, err
	}
	return &Secret{pass: p, kdf: kdf}, nil
}

// ID is the key file id, empty for a passphrase.
func (s *Secret) ID() string { return s.id }

// Text is the key file form: urne-backup-key-v1:<id>:<base64 of 32 bytes>.
func (s *Secret) Text() string {
	if s.key == nil {
		return ""
	}
	return keyPrefix + ":" + s.id + ":" + base64.StdEncoding.EncodeToString(s.key[:])
}

// ParseKey reads the text form of a backup key. Errors never quote the text.
func ParseKey(text []byte) (*Secret, error) {
	parts := strings.Split(strings.TrimRight(string(text), " \t\r\n"), ":")
	if len(parts) != 3 || parts[0] != keyPrefix {
		return nil, errorf(ErrKey, "malformed backup key: expected one line %s:<id>:<base64 of %d bytes>", keyPrefix, keySize)
	}
	if err := checkKeyID(parts[1]); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(raw) != keySize {
		return nil, errorf(ErrKey, "malformed backup key %q: the key must be standard base64 of exactly %d bytes", parts[1], keySize)
	}
	var k [keySize]byte
	copy(k[:], raw)
	return &Secret{id: parts[1], key: &k}, nil
}

func checkKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return errorf(ErrKey, "a backup key id must be 1 to %d characters", maxKeyIDLen)
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errorf(ErrKey, "a backup key id may only hold letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// WriteKeyFile writes the key to a new file of mode 0600, syncs it, and refuses to replace an
// existing one: losing a backup key makes every archive sealed with it unreadable.
func WriteKeyFile(path string, s *Secret) error {
	if s.key == nil {
		return errorf(ErrKey, "a passphrase has no key file")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("backup key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup key file: %w", err)
	}
	_, err = f.WriteString(s.Text() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup key file %s: %w", path, err)
	}
	return nil
}

// LoadKeyFile reads a backup key file; like a key-encryption key it must be a regular file
// that only its owner may read.
func LoadKeyFile(path string) (*Secret, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(ErrKey, "backup key file %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 || !info.Mode().IsRegular() {
		return nil, errorf(ErrKey, "backup key file %s has mode %04o; it must be a regular file of mode 0600 (chmod 600 %s)", path, perm, path)
	}
	text, err := io.ReadAll(io.LimitReader(f, maxKeyText+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrKey, path, err)
	}
	if len(text) > maxKeyText {
		return nil, errorf(ErrKey, "backup key file %s is larger than %d bytes: not a key file", path, maxKeyText)
	}
	s, err := ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// archiveKeys are the keys of one archive, derived from the secret and the archive's salt, so
// that no two archives share an encryption key even under one backup key.
type archiveKeys struct {
	data  []byte
	check []byte
}

// derive computes the keys of an archive whose header names info and salt.
func (s *Secret) derive(info KeyInfo, salt []byte) (*archiveKeys, error) {
	var master []byte
	switch {
	case info.Kind != s.kind():
		return nil, errorf(ErrWrongKey, "the archive was sealed with %s, but %s was given", describeKeyInfo(info), s)
	case s.key != nil:
		master = s.key[:]
	case info.KDF == nil:
		return nil, errorf(ErrCorrupt, "the archive is sealed with a passphrase but gives no argon2id cost")
	default:
		if err := info.KDF.check(); err != nil {
			return nil, err
		}
		master = argon2.IDKey(s.pass, salt, info.KDF.Time, info.KDF.MemoryKiB, info.KDF.Threads, keySize)
	}
	data, err := hkdf.Key(sha256.New, master, salt, "urne-backup-v1 data", keySize)
	if err != nil {
		return nil, err
	}
	check, err := hkdf.Key(sha256.New, master, salt, "urne-backup-v1 key check", checkSize)
	if err != nil {
		return nil, err
	}
	return &archiveKeys{data: data, check: check}, nil
}

// open derives the archive keys and refuses a secret whose check value differs, naming both
// keys so the operator knows which one to fetch.
func (s *Secret) open(info KeyInfo, salt []byte) (*archiveKeys, error) {
	k, err := s.derive(info, salt)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.check, info.Check) != 1 {
		if s.key != nil && info.ID != s.id {
			return nil, errorf(ErrWrongKey, "the archive was sealed with backup key %q, but the key given is %q", info.ID, s.id)
		}
		return nil, errorf(ErrWrongKey, "%s does not open this archive (sealed with %s)", s, describeKeyInfo(info))
	}
	return k, nil
}

// seal draws a salt and returns the header's key description and the archive keys.
func (s *Secret) seal() (KeyInfo, []byte, *archiveKeys, error) {
	salt := make([]byte, saltSize)
	_, _ = rand.Read(salt)
	info := KeyInfo{Kind: s.kind(), ID: s.id}
	if s.key == nil {
		kdf := s.kdf
		info.KDF = &kdf
	}
	k, err := s.derive(info, salt)
	if err != nil {
		return KeyInfo{}, nil, nil, err
	}
	info.Check = k.check
	return info, salt, k, nil
}

func describeKeyInfo(info KeyInfo) string {
	if info.Kind == KindKeyFile {
		return fmt.Sprintf("backup key %q", info.ID)
	}
	return "a passphrase"
}
