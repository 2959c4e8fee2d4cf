// Package keyring owns encryption at rest: the key-encryption key, a node's data keys, and
// AES-256-GCM sealing with key ids and associated data.
package keyring

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package that matches one of these wraps it, so
// callers test with errors.Is; the message itself names the file, key id or data concerned.
var (
	// ErrKEKFormat: key-encryption key text is not "urne-kek-v1:<id>:<base64 of 32 bytes>".
	ErrKEKFormat = errors.New("malformed key-encryption key")
	// ErrKEKSource: a KEKSource has not exactly one of File, Env and Command set, or the source
	// cannot be read (missing file, loose file mode, empty variable, failing command).
	ErrKEKSource = errors.New("key-encryption key source")
	// ErrNoKeyring: the keyring file does not exist (a new node must Create it).
	ErrNoKeyring = errors.New("no keyring")
	// ErrKeyringExists: Create found a keyring file already there and left it alone.
	ErrKeyringExists = errors.New("keyring already exists")
	// ErrKEKMismatch: the keyring was sealed with a key-encryption key of another id.
	ErrKEKMismatch = errors.New("keyring sealed with another key-encryption key")
	// ErrKEKWrong: the key-encryption key has the right id but does not open the keyring
	// (wrong key bytes or a corrupted file).
	ErrKEKWrong = errors.New("key-encryption key does not open keyring")
	// ErrKeyringCorrupt: the keyring file is not laid out as a keyring file.
	ErrKeyringCorrupt = errors.New("corrupt keyring")
	// ErrUnknownKeyID: a ciphertext names a data key id that this keyring does not hold.
	ErrUnknownKeyID = errors.New("unknown data key id")
	// ErrDecrypt: a ciphertext does not authenticate (wrong associated data, tampering).
	ErrDecrypt = errors.New("ciphertext does not authenticate")
	// ErrShortCiphertext: a ciphertext is shorter than its header and tag.
	ErrShortCiphertext = errors.New("ciphertext too short")
	// ErrVersion: a ciphertext or stream starts with a format version this build does not know.
	ErrVersion = errors.New("unknown ciphertext version")
	// ErrTruncated: an encrypted stream ends before its final chunk.
	ErrTruncated = errors.New("encrypted stream truncated")
	// ErrStreamSize: a byte count cannot be the size of an encrypted stream.
	ErrStreamSize = errors.New("invalid encrypted stream size")
	// ErrClosed: a stream writer was used after Close.
	ErrClosed = errors.New("encrypted stream writer closed")
)

// detailedError carries an operator-facing message while still matching its sentinel with
// errors.Is, so the message reads as one sentence instead of "sentinel: details".
type detailedError struct {
	msg  string
	kind error
}

func (e *detailedError) Error() string { return e.msg }
func (e *detailedError) Unwrap() error { return e.kind }

// errorf builds a detailedError of the given kind.
func errorf(kind error, format string, args ...any) error {
	return &detailedError{msg: fmt.Sprintf(format, args...), kind: kind}
}
