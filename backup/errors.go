// Package backup owns the backup archive: an encrypted, checksummed copy of an election's state
// at one raft index, written and read as a stream, and the keys that seal it.
package backup

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error of this package wraps one of them, with the details an operator
// needs (which chunk, which key, how many bytes).
var (
	// ErrNotArchive: the file does not start like an Urne backup archive.
	ErrNotArchive = errors.New("not an Urne backup archive")
	// ErrVersion: the archive uses a format version this build does not read.
	ErrVersion = errors.New("unsupported backup format version")
	// ErrTruncated: the archive ends before its checksum frame.
	ErrTruncated = errors.New("backup archive truncated")
	// ErrCorrupt: the framing, the header or the checksum is wrong: the file was damaged.
	ErrCorrupt = errors.New("backup archive corrupt")
	// ErrWrongKey: the key or passphrase given is not the one the archive was sealed with.
	ErrWrongKey = errors.New("wrong backup key")
	// ErrDecrypt: a sealed chunk does not authenticate: it was altered, reordered or damaged.
	ErrDecrypt = errors.New("backup chunk does not authenticate")
	// ErrSnapshot: the decrypted content is not a complete, consistent state snapshot.
	ErrSnapshot = errors.New("backup content is not a valid state snapshot")
	// ErrKey: a backup key file or passphrase is malformed or unsafe.
	ErrKey = errors.New("invalid backup key")
)

func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
