// Package storage owns the encrypted raft stores: log, stable and snapshot stores wrapping
// raft-boltdb and the file snapshot store, so that no plaintext of election data reaches disk.
package storage

import (
	"errors"
	"io"

	"github.com/urne-vote/urne/keyring"
)

// Sealer encrypts and authenticates small values bound to their storage location (aad).
// *keyring.Keyring implements it.
type Sealer interface {
	Seal(aad, plaintext []byte) []byte
	Open(aad, ciphertext []byte) ([]byte, error)
}

// StreamSealer encrypts and authenticates streams in bounded memory, in the format whose size
// keyring.PlaintextSize inverts. *keyring.Keyring implements it.
type StreamSealer interface {
	NewWriter(w io.Writer, aad []byte) io.WriteCloser
	NewReader(r io.Reader, aad []byte) (io.Reader, error)
}

var (
	_ Sealer       = (*keyring.Keyring)(nil)
	_ StreamSealer = (*keyring.Keyring)(nil)
)

// Sentinel errors. Decryption failures wrap the keyring's own sentinels (keyring.ErrDecrypt,
// keyring.ErrUnknownKeyID, ...) with the log index, key or snapshot id concerned.
var (
	// ErrStableValue: a value read through GetUint64 does not decrypt to 8 bytes.
	ErrStableValue = errors.New("malformed raft stable store value")
)
