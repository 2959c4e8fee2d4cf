package fsm

import (
	"errors"
	"fmt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Sentinel errors. Domain refusals travel through raft as a *fsmpb.Response code;
// ResponseError turns that code back into one of these, so callers test with errors.Is.
var (
	// ErrInvalid: the command is malformed (size, identifier, missing field, codec version).
	ErrInvalid = errors.New("invalid command")
	// ErrNoElection: the command needs an election and none has been created.
	ErrNoElection = errors.New("no election")
	// ErrWrongElection: the command names another election than the one this cluster runs.
	ErrWrongElection = errors.New("wrong election")
	// ErrWrongPhase: the election is not in a phase that allows the command.
	ErrWrongPhase = errors.New("wrong election phase")
	// ErrUnknownVoter: the voter id is not on the roll.
	ErrUnknownVoter = errors.New("unknown voter")
	// ErrAlreadyVoted: the voter has an émargement from another request or ballot.
	ErrAlreadyVoted = errors.New("voter already voted")
	// ErrBallotTooLarge: the ballot is empty or larger than MaxBallotSize.
	ErrBallotTooLarge = errors.New("ballot too large")
	// ErrUnknownCommand: this version does not know the command type.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrDuplicateBallot: the same ballot bytes are already in the box for another voter.
	ErrDuplicateBallot = errors.New("duplicate ballot")
	// ErrSealed: the election is sealed; its configuration, lists, key and roll cannot change.
	ErrSealed = errors.New("election sealed")
	// ErrRuleViolated: the request breaks a rule of the election's legal profile or of a
	// scrutin (window length, gender balance, incomplete configuration at sealing).
	ErrRuleViolated = errors.New("election rule violated")
	// ErrNotAllowed: the profile reserves the command to another role or path (an opaque cast
	// in a legal election, an unlock by anyone but an operator).
	ErrNotAllowed = errors.New("not allowed")
	// ErrLocked: the voter's account is locked after too many failed attempts.
	ErrLocked = errors.New("account locked")
	// ErrAuthFailed: the identifier is unknown (a wrong secret or code is recorded, not refused).
	ErrAuthFailed = errors.New("authentication failed")
	// ErrOTPExpired: the one-time code is past its validity.
	ErrOTPExpired = errors.New("one-time code expired")
	// ErrOTPInvalid: no one-time code is pending: it was already used, or never asked for.
	ErrOTPInvalid = errors.New("no one-time code pending")
	// ErrSessionInvalid: the session token is unknown, ended or expired by inactivity.
	ErrSessionInvalid = errors.New("session invalid")
	// ErrOutsideWindow: the command's time is outside the voting window.
	ErrOutsideWindow = errors.New("outside the voting window")
	// ErrNotFound: the scrutin, list or voter the command names does not exist.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the state machine was closed.
	ErrClosed = errors.New("state machine closed")
	// ErrCorrupt: the database or a snapshot failed an integrity check.
	ErrCorrupt = errors.New("state corrupt")
)

// codeErrors maps each refusal code to its sentinel; OK has none.
var codeErrors = map[fsmpb.ResponseCode]error{
	fsmpb.ResponseCode_RESPONSE_INVALID:          ErrInvalid,
	fsmpb.ResponseCode_RESPONSE_NO_ELECTION:      ErrNoElection,
	fsmpb.ResponseCode_RESPONSE_WRONG_ELECTION:   ErrWrongElection,
	fsmpb.ResponseCode_RESPONSE_WRONG_PHASE:      ErrWrongPhase,
	fsmpb.ResponseCode_RESPONSE_UNKNOWN_VOTER:    ErrUnknownVoter,
	fsmpb.ResponseCode_RESPONSE_ALREADY_VOTED:    ErrAlreadyVoted,
	fsmpb.ResponseCode_RESPONSE_BALLOT_TOO_LARGE: ErrBallotTooLarge,
	fsmpb.ResponseCode_RESPONSE_UNKNOWN_COMMAND:  ErrUnknownCommand,
	fsmpb.ResponseCode_RESPONSE_DUPLICATE_BALLOT: ErrDuplicateBallot,
	fsmpb.ResponseCode_RESPONSE_SEALED:           ErrSealed,
	fsmpb.ResponseCode_RESPONSE_RULE_VIOLATED:    ErrRuleViolated,
	fsmpb.ResponseCode_RESPONSE_NOT_ALLOWED:      ErrNotAllowed,
	fsmpb.ResponseCode_RESPONSE_LOCKED:           ErrLocked,
	fsmpb.ResponseCode_RESPONSE_AUTH_FAILED:      ErrAuthFailed,
	fsmpb.ResponseCode_RESPONSE_OTP_EXPIRED:      ErrOTPExpired,
	fsmpb.ResponseCode_RESPONSE_OTP_INVALID:      ErrOTPInvalid,
	fsmpb.ResponseCode_RESPONSE_SESSION_INVALID:  ErrSessionInvalid,
	fsmpb.ResponseCode_RESPONSE_OUTSIDE_WINDOW:   ErrOutsideWindow,
	fsmpb.ResponseCode_RESPONSE_NOT_FOUND:        ErrNotFound,
}

// ResponseError returns nil for an OK response, otherwise the sentinel of its code wrapped
// with the response message. A nil response is reported as an error: raft gave no answer.
func ResponseError(r *fsmpb.Response) error {
	if r == nil {
		return fmt.Errorf("%w: no response from the state machine", ErrInvalid)
	}
	if r.Code == fsmpb.ResponseCode_RESPONSE_OK {
		return nil
	}
	sentinel, ok := codeErrors[r.Code]
	if !ok {
		return fmt.Errorf("state machine answered unknown code %d: %s", r.Code, r.Message)
	}
	return fmt.Errorf("%w: %s", sentinel, r.Message)
}

// responseCode is the inverse of codeErrors for an error returned by a handler.
func responseCode(err error) fsmpb.ResponseCode {
	for code, sentinel := range codeErrors {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	return fsmpb.ResponseCode_RESPONSE_INVALID
}

// errorResponse turns a domain refusal into the response replicated to the caller.
func errorResponse(err error) *fsmpb.Response {
	return &fsmpb.Response{Code: responseCode(err), Message: err.Error()}
}

// storageError marks a failure of the database itself (disk, corruption, wrong key), as
// opposed to a refused command. Applying cannot go on after one: see FSM.ApplyBatch.
type storageError struct{ err error }

func (e *storageError) Error() string { return "storage failure: " + e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

func storageErr(format string, args ...any) error {
	return &storageError{err: fmt.Errorf(format, args...)}
}
