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
