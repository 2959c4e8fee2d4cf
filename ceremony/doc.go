// Package ceremony owns the election key ceremony: the election key pair, its split into
// fragments under an access policy, each fragment and each bureau member's signing key locked
// under its holder's passphrase, and rebuilding the key for the tally.
package ceremony

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns that matches one of these wraps it, so
// callers test with errors.Is; the message names the holder, gate or file concerned.
var (
	// ErrPolicy: an access policy is malformed (bad threshold, duplicate or invalid holder
	// name, too deep, unparsable text or JSON).
	ErrPolicy = errors.New("invalid access policy")
	// ErrWeakPolicy: one holder alone satisfies the policy, which would put the whole election
	// key in one person's hands.
	ErrWeakPolicy = errors.New("policy satisfied by a single holder")
	// ErrHolders: the holder list is malformed (duplicate name, unknown role), or a holder the
	// policy names is missing from it.
	ErrHolders = errors.New("invalid holder list")
	// ErrForbiddenHolder: the policy gives a fragment to someone whose role may not hold one
	// (operators, technical staff, observers, experts).
	ErrForbiddenHolder = errors.New("role may not hold a key fragment")
	// ErrPassphrase: a person who receives a fragment or signing key has no passphrase, or
	// one shorter than MinPassphraseLen.
	ErrPassphrase = errors.New("missing or too short passphrase")
	// ErrWrongPassphrase: a passphrase does not open a locked file (or the file was altered).
	ErrWrongPassphrase = errors.New("passphrase does not open the locked file")
	// ErrFileFormat: a locked fragment or signing key file is malformed.
	ErrFileFormat = errors.New("malformed locked file")
	// ErrNotSatisfied: the fragments given do not satisfy the access policy.
	ErrNotSatisfied = errors.New("fragments do not satisfy the access policy")
	// ErrMismatch: fragments come from different ceremonies, or from a ceremony under another
	// policy than the one given.
	ErrMismatch = errors.New("fragments do not belong together")
	// ErrCorrupt: fragments satisfy the policy but do not rebuild the election key (one of them
	// was altered).
	ErrCorrupt = errors.New("fragments do not rebuild the election key")
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
