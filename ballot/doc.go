// Package ballot owns the ballot formats: the inner ballot sealed on the voter's device to the
// election key, the outer envelope to the cluster's envelope key, the receipt the cluster signs,
// and the Merkle tree over the box's fingerprints that lets a voter check a receipt.
package ballot

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of these, so callers test with
// errors.Is; the message itself says what was wrong and with which key, size or session.
var (
	// ErrVoteFormat: a vote does not follow the canonical vote layout (bad id, wrong size,
	// non-zero padding, a blank vote that names a list).
	ErrVoteFormat = errors.New("malformed vote")
	// ErrBallotFormat: an inner ballot has an unknown version, an unknown suite or the wrong
	// size for its suite.
	ErrBallotFormat = errors.New("malformed inner ballot")
	// ErrEnvelopeFormat: an envelope has an unknown version or suite, or a size that no
	// envelope of a known inner suite has.
	ErrEnvelopeFormat = errors.New("malformed envelope")
	// ErrWrongKey: a ballot or envelope names a key id other than the key given to open it.
	ErrWrongKey = errors.New("sealed to another key")
	// ErrBallotOpen: an inner ballot does not decrypt under the election key (altered bytes).
	ErrBallotOpen = errors.New("inner ballot does not decrypt")
	// ErrEnvelopeOpen: an envelope does not decrypt for the given session (altered bytes, or
	// an envelope sealed for another voting session and replayed).
	ErrEnvelopeOpen = errors.New("envelope does not decrypt")
	// ErrKeyFormat: a key does not parse, or is not of the type and size its suite requires.
	ErrKeyFormat = errors.New("malformed key")
	// ErrSessionID: a voting session id is empty or too long.
	ErrSessionID = errors.New("invalid voting session id")
	// ErrReceipt: a receipt is malformed or its signature does not verify.
	ErrReceipt = errors.New("receipt does not verify")
	// ErrProof: an inclusion proof is malformed or does not lead to the published root.
	ErrProof = errors.New("inclusion proof does not verify")
)

// detailedError carries an operator-facing message while still matching its sentinel with
// errors.Is, so the message reads as one sentence instead of "sentinel: details".
type detailedError struct {
	msg  string
	kind error
}

func (e *detailedError) Error() string { return e.msg }
func (e *detailedError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &detailedError{msg: fmt.Sprintf(format, args...), kind: kind}
}
