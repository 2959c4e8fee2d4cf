package node

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// reasonOf pairs each error we return with its gRPC code and API reason.
var reasonOf = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{fsm.ErrInvalid, codes.InvalidArgument, urnepb.ReasonInvalid},
	{fsm.ErrBallotTooLarge, codes.InvalidArgument, urnepb.ReasonBallotTooLarge},
	{fsm.ErrNoElection, codes.NotFound, urnepb.ReasonNoElection},
	{fsm.ErrUnknownVoter, codes.NotFound, urnepb.ReasonUnknownVoter},
	{fsm.ErrAlreadyVoted, codes.AlreadyExists, urnepb.ReasonAlreadyVoted},
	{fsm.ErrDuplicateBallot, codes.AlreadyExists, urnepb.ReasonDuplicateBallot},
	{fsm.ErrWrongPhase, codes.FailedPrecondition, urnepb.ReasonWrongPhase},
	{fsm.ErrWrongElection, codes.FailedPrecondition, urnepb.ReasonWrongElection},
	{fsm.ErrUnknownCommand, codes.Unimplemented, urnepb.ReasonUnknownCommand},
	{ErrNoLeader, codes.Unavailable, urnepb.ReasonNoLeader},
	{ErrOutcomeUnknown, codes.Unavailable, urnepb.ReasonOutcomeUnknown},
	{ErrShutdown, codes.Unavailable, urnepb.ReasonNoLeader},
	{ErrNotFound, codes.NotFound, urnepb.ReasonNotFound},
	{fsm.ErrNotFound, codes.NotFound, urnepb.ReasonNotFound},
	{fsm.ErrSealed, codes.FailedPrecondition, urnepb.ReasonSealed},
	{fsm.ErrRuleViolated, codes.FailedPrecondition, urnepb.ReasonRuleViolated},
	{fsm.ErrNotAllowed, codes.PermissionDenied, urnepb.ReasonNotAllowed},
	{fsm.ErrLocked, codes.PermissionDenied, urnepb.ReasonLocked},
	{fsm.ErrAuthFailed, codes.Unauthenticated, urnepb.ReasonAuthFailed},
	{fsm.ErrOTPExpired, codes.FailedPrecondition, urnepb.ReasonCodeExpired},
	{fsm.ErrOTPInvalid, codes.FailedPrecondition, urnepb.ReasonCodeInvalid},
	{fsm.ErrSessionInvalid, codes.Unauthenticated, urnepb.ReasonSessionInvalid},
	{fsm.ErrOutsideWindow, codes.FailedPrecondition, urnepb.ReasonOutsideWindow},
	{ErrEnvelope, codes.InvalidArgument, urnepb.ReasonEnvelopeInvalid},
	{ErrNotConfigured, codes.FailedPrecondition, urnepb.ReasonNotConfigured},
	{ErrInvalidRequest, codes.InvalidArgument, urnepb.ReasonInvalid},
	{ErrChaosDisabled, codes.FailedPrecondition, urnepb.ReasonChaosDisabled},
	{ErrInvalidChaos, codes.InvalidArgument, urnepb.ReasonInvalid},
}

// toStatus turns an error into a gRPC status carrying an ErrorInfo reason.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	code, reason := codes.Internal, urnepb.ReasonInternal
	for _, r := range reasonOf {
		if errors.Is(err, r.err) {
			code, reason = r.code, r.reason
			break
		}
	}
	st := status.New(code, err.Error())
	if withInfo, e := st.WithDetails(&errdetails.ErrorInfo{Domain: urnepb.ErrorDomain, Reason: reason}); e == nil {
		st = withInfo
	}
	return st.Err()
}

// forwardedError maps an error from the leader's internal service back to ours. A transport
// failure after the request may have reached the leader leaves the outcome unknown.
func forwardedError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == urnepb.ErrorDomain {
			switch info.Reason {
			case urnepb.ReasonNoLeader:
				return fmt.Errorf("%w: %s", ErrNoLeader, st.Message())
			case urnepb.ReasonOutcomeUnknown:
				return fmt.Errorf("%w: %s", ErrOutcomeUnknown, st.Message())
			}
			return err
		}
	}
	return fmt.Errorf("%w: leader unreachable: %s", ErrOutcomeUnknown, st.Message())
}

// responseError turns a state machine response into nil or a typed error.
func responseError(r *fsmpb.Response) error { return fsm.ResponseError(r) }

func unmarshalResponse(b []byte, r *fsmpb.Response) error {
	if err := proto.Unmarshal(b, r); err != nil {
		return fmt.Errorf("%w: bad response from leader: %v", ErrOutcomeUnknown, err)
	}
	return nil
}

// maxListedProblems bounds how many of a batch's problems an answer lists: a whole roll with
// the same mistake names the first few voters and counts the rest.
const maxListedProblems = 10

// joinProblems joins the non-nil errors of errs like errors.Join, listing at most
// maxListedProblems of them and counting the others.
func joinProblems(errs []error) error {
	var listed []error
	more := 0
	for _, err := range errs {
		switch {
		case err == nil:
		case len(listed) < maxListedProblems:
			listed = append(listed, err)
		default:
			more++
		}
	}
	if more > 0 {
		listed = append(listed, fmt.Errorf("... and %d more", more))
	}
	return errors.Join(listed...)
}
