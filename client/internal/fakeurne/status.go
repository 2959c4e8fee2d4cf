package fakeurne

import (
	"fmt"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Codes maps every reason to the status code a node sends with it.
var Codes = map[string]codes.Code{
	urnepb.ReasonInvalid:          codes.InvalidArgument,
	urnepb.ReasonBallotTooLarge:   codes.InvalidArgument,
	urnepb.ReasonNoElection:       codes.NotFound,
	urnepb.ReasonUnknownVoter:     codes.NotFound,
	urnepb.ReasonNotFound:         codes.NotFound,
	urnepb.ReasonAlreadyVoted:     codes.AlreadyExists,
	urnepb.ReasonDuplicateBallot:  codes.AlreadyExists,
	urnepb.ReasonWrongPhase:       codes.FailedPrecondition,
	urnepb.ReasonWrongElection:    codes.FailedPrecondition,
	urnepb.ReasonNoLeader:         codes.Unavailable,
	urnepb.ReasonOutcomeUnknown:   codes.Unavailable,
	urnepb.ReasonPermissionDenied: codes.PermissionDenied,
	urnepb.ReasonUnknownCommand:   codes.Internal,
	urnepb.ReasonInternal:         codes.Internal,
	urnepb.ReasonSealed:           codes.FailedPrecondition,
	urnepb.ReasonRuleViolated:     codes.FailedPrecondition,
	urnepb.ReasonNotAllowed:       codes.PermissionDenied,
	urnepb.ReasonLocked:           codes.PermissionDenied,
	urnepb.ReasonAuthFailed:       codes.Unauthenticated,
	urnepb.ReasonCodeExpired:      codes.FailedPrecondition,
	urnepb.ReasonCodeInvalid:      codes.FailedPrecondition,
	urnepb.ReasonSessionInvalid:   codes.Unauthenticated,
	urnepb.ReasonOutsideWindow:    codes.FailedPrecondition,
	urnepb.ReasonEnvelopeInvalid:  codes.InvalidArgument,
	urnepb.ReasonNotConfigured:    codes.FailedPrecondition,
	urnepb.ReasonChaosDisabled:    codes.FailedPrecondition,
}

// Status returns the error a node sends for reason: a status with one ErrorInfo detail.
func Status(reason, format string, args ...any) error {
	code, ok := Codes[reason]
	if !ok {
		code = codes.Unknown
	}
	st := status.New(code, fmt.Sprintf(format, args...))
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: urnepb.ErrorDomain, Reason: reason})
	if err != nil {
		panic(err) // ErrorInfo always marshals
	}
	return withInfo.Err()
}
