// Package tally owns the count: decrypting the ballot box with the rebuilt election key,
// counting per scrutin and list, and the minutes (procès-verbal) signed by the bureau.
package tally

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns that matches one of these wraps it, so
// callers test with errors.Is; the message gives the counts, member or line concerned.
var (
	// ErrMismatch: the box holds a different number of ballots than the émargement list has
	// entries. Count still returns its result so the discrepancy can be put in the minutes.
	ErrMismatch = errors.New("ballots and émargements differ")
	// ErrDuplicate: the same ballot (fingerprint) appears twice in the box.
	ErrDuplicate = errors.New("ballot appears twice")
	// ErrKey: the rebuilt keys cannot open the box at all (ballots sealed to another election
	// key, or keys already zeroed): the count stops.
	ErrKey = errors.New("rebuilt keys do not match the box")
	// ErrExport: a ballot export file is malformed, truncated or inconsistent with its header.
	ErrExport = errors.New("malformed ballot export")
	// ErrBoxDigest: the ballots of an export do not hash to the box digest it announces.
	ErrBoxDigest = errors.New("ballots do not match the box digest")
	// ErrMinutes: minutes are malformed.
	ErrMinutes = errors.New("malformed minutes")
	// ErrSignature: a signature on the minutes is malformed, from an unknown member, or does not
	// verify (the minutes were altered).
	ErrSignature = errors.New("minutes signature does not verify")
	// ErrUnsigned: a signatory named in the minutes has not signed them.
	ErrUnsigned = errors.New("minutes lack a required signature")
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
