package ceremony

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"golang.org/x/crypto/argon2"

	"github.com/urne-vote/urne/ballot"
)

// KDFParams are the argon2id (RFC 9106) parameters that turn a passphrase into the key of a
// locked file. They are written in the file, so a file stays readable if the defaults change.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF is RFC 9106's second recommended setting: 3 passes over 64 MiB with 4 lanes,
// about a tenth of a second per unlock on a laptop, and 64 MiB of memory per guess for anyone
// who steals a file and tries passphrases.
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds on the parameters a file may ask for, so that a crafted file cannot make the tally
// machine allocate without limit.
const (
	maxKDFTime      = 32
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFThreads   = 64
	saltSize        = 16
	keySize         = 32
	nonceSize       = 12
	maxLockedFile   = 1 << 20
	maxCiphertext   = 64 << 10

	// MinPassphraseLen is the shortest passphrase the ceremony accepts.
	MinPassphraseLen = 12
)

func (k KDFParams) validate() error {
	if k.Time < 1 || k.Time > maxKDFTime || k.Threads < 1 || k.Threads > maxKDFThreads ||
		k.MemoryKiB < 8*uint32(k.Threads) || k.MemoryKiB > maxKDFMemoryKiB {
		return errorf(ErrFileFormat, "argon2id parameters time=%d memory=%d KiB threads=%d are out of bounds (time 1-%d, threads 1-%d, memory 8 KiB per thread to %d KiB)",
			k.Time, k.MemoryKiB, k.Threads, maxKDFTime, maxKDFThreads, maxKDFMemoryKiB)
	}
	return nil
}

// Formats of locked files.
const (
	FormatFragment   = "urne-fragment-v1"
	FormatSigningKey = "urne-signing-key-v1"
)

// LockedFile is a fragment or a signing key encrypted under its holder's passphrase:
// AES-256-GCM with a key derived by argon2id, every header field bound as associated data.
// Its JSON form is the file handed to the holder.
type LockedFile struct {
	Format     string     `json:"format"`
	ElectionID string     `json:"election_id,omitempty"`
	CeremonyID ballot.Hex `json:"ceremony_id"`
	Owner      string     `json:"owner"`
	Role       Role       `json:"role"`
	// Policy is the canonical text of the access policy (fragments only).
	Policy     string     `json:"policy,omitempty"`
	KDF        kdfHeader  `json:"kdf"`
	Nonce      ballot.Hex `json:"nonce"`
	Ciphertext []byte     `json:"ciphertext"`
}

type kdfHeader struct {
	Algorithm string `json:"algorithm"`
	KDFParams
	Salt ballot.Hex `json:"salt"`
}

const kdfArgon2id = "argon2id"

// lock encrypts plaintext under pass into f, whose header fields are already set.
func (f *LockedFile) lock(params KDFParams, pass, plaintext []byte) error {
	if err := params.validate(); err != nil {
		return err
	}
	f.KDF = kdfHeader{Algorithm: kdfArgon2id, KDFParams: params, Salt: make([]byte, saltSize)}
	_, _ = rand.Read(f.KDF.Salt) // crypto/rand.Read never fails (it aborts the program instead)
	f.Nonce = make([]byte, nonceSize)
	_, _ = rand.Read(f.Nonce)
	aead := f.aead(pass)
	f.Ciphertext = aead.Seal(nil, f.Nonce, plaintext, f.associatedData())
	return nil
}

// open decrypts the file with pass.
func (f *LockedFile) open(pass []byte) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	plain, err := f.aead(pass).Open(nil, f.Nonce, f.Ciphertext, f.associatedData())
	if err != nil {
		return nil, errorf(ErrWrongPassphrase, "the passphrase does not open the %s of %q (ceremony %s): wrong passphrase, or the file was altered", f.what(), f.Owner, f.CeremonyID)
	}
	return plain, nil
}

func (f *LockedFile) what() string {
	if f.Format == FormatSigningKey {
		return "signing key"
	}
	return "fragment"
}

func (f *LockedFile) aead(pass []byte) cipher.AEAD {
	k := f.KDF
	key := argon2.IDKey(pass, k.Salt, k.Time, k.MemoryKiB, k.Threads, keySize)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("ceremony: AES key of %d bytes", len(key)))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("ceremony: GCM: " + err.Error())
	}
	return aead
}

// associatedData binds every header field: a file whose owner, policy or parameters were
// edited no longer opens.
func (f *LockedFile) associatedData() []byte {
	var b []byte
	for _, s := range []string{"urne locked file v1", f.Format, f.ElectionID, string(f.CeremonyID), f.Owner, string(f.Role), f.Policy, f.KDF.Algorithm, string(f.KDF.Salt)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, f.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, f.KDF.MemoryKiB)
	return append(b, f.KDF.Threads)
}

// check validates the header of a file read from disk before any work is spent on it.
func (f *LockedFile) check() error {
	if f.Format != FormatFragment && f.Format != FormatSigningKey {
		return errorf(ErrFileFormat, "locked file has format %q; this build reads %s and %s", f.Format, FormatFragment, FormatSigningKey)
	}
	if err := checkName(f.Owner); err != nil {
		return errorf(ErrFileFormat, "locked file owner: %v", err)
	}
	if f.KDF.Algorithm != kdfArgon2id {
		return errorf(ErrFileFormat, "locked file of %q uses KDF %q; this build reads %s", f.Owner, f.KDF.Algorithm, kdfArgon2id)
	}
	if err := f.KDF.validate(); err != nil {
		return err
	}
	if len(f.KDF.Salt) != saltSize || len(f.Nonce) != nonceSize || len(f.CeremonyID) != ceremonyIDSize {
		return errorf(ErrFileFormat, "locked file of %q: salt, nonce or ceremony id has the wrong size", f.Owner)
	}
	if len(f.Ciphertext) > maxCiphertext || len(f.Policy) > maxPolicyText || len(f.ElectionID) > ballot.MaxElectionIDLen {
		return errorf(ErrFileFormat, "locked file of %q has an oversized field", f.Owner)
	}
	return nil
}

// ParseLockedFile reads a locked fragment or signing key file and checks its header.
func ParseLockedFile(data []byte) (*LockedFile, error) {
	if len(data) > maxLockedFile {
		return nil, errorf(ErrFileFormat, "locked file is %d bytes; at most %d are read", len(data), maxLockedFile)
	}
	var f LockedFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, errorf(ErrFileFormat, "locked file is not valid JSON: %v", err)
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Marshal is the file's JSON text.
func (f *LockedFile) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode locked file of %q: %w", f.Owner, err)
	}
	return append(b, '\n'), nil
}
