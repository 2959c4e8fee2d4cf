package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors. Every error a node returns is an *Error whose Unwrap gives one of them, so
// callers test with errors.Is(err, client.ErrAlreadyVoted) and still print the node's message.
var (
	// ErrInvalid: the request is malformed or out of bounds (reason INVALID).
	ErrInvalid = errors.New("invalid request")
	// ErrNoElection: no election has been created on this cluster yet (NO_ELECTION).
	ErrNoElection = errors.New("no election on this cluster")
	// ErrWrongElection: the request names another election than the one this cluster runs.
	ErrWrongElection = errors.New("wrong election")
	// ErrWrongPhase: the election is not in the phase the request needs, e.g. a cast before
	// the election opened or after it closed.
	ErrWrongPhase = errors.New("election is not in the right phase")
	// ErrUnknownVoter: the voter is not on the roll.
	ErrUnknownVoter = errors.New("voter is not on the roll")
	// ErrAlreadyVoted: the voter's émargement already exists (with another request id).
	ErrAlreadyVoted = errors.New("voter has already voted")
	// ErrBallotTooLarge: the ballot exceeds the size the cluster accepts.
	ErrBallotTooLarge = errors.New("ballot too large")
	// ErrDuplicateBallot: a ballot with the same fingerprint is already in the box.
	ErrDuplicateBallot = errors.New("duplicate ballot")
	// ErrPermissionDenied: the client certificate's role may not make this request.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNotFound: the object the request names does not exist (NOT_FOUND).
	ErrNotFound = errors.New("not found")
	// ErrInternal: the node failed in a way the client cannot correct (INTERNAL,
	// UNKNOWN_COMMAND during a rolling upgrade, or a status this client does not know).
	ErrInternal = errors.New("internal error on the node")
	// ErrUnavailable: the client gave up after MaxAttempts attempts without an answer; it wraps
	// the last error. A write that fails with it was not applied: every attempt met no leader or
	// no connection (otherwise the error is ErrOutcomeUnknown).
	ErrUnavailable = errors.New("cluster unavailable")
	// ErrOutcomeUnknown: the write may or may not have happened and retries were exhausted.
	// Sending it again with the same request id (CastWithRequestID) is safe and tells.
	ErrOutcomeUnknown = errors.New("outcome of the write is unknown")
	// ErrSealed: the election is sealed; its configuration, lists, key and roll cannot change.
	ErrSealed = errors.New("election is sealed")
	// ErrRuleViolated: the request breaks a rule of the election's profile or of a scrutin
	// (window length, gender balance, incomplete election at sealing, build changed).
	ErrRuleViolated = errors.New("election rule violated")
	// ErrNotAllowed: the election's profile reserves the request to another role or path.
	ErrNotAllowed = errors.New("not allowed by the election's rules")
	// ErrLocked: the voter's account is locked after too many failures; an operator unlocks it.
	ErrLocked = errors.New("account locked")
	// ErrAuthFailed: wrong identifier, secret or code; the message says how many attempts are left.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrCodeExpired: the one-time code is past its validity; ask for a new one.
	ErrCodeExpired = errors.New("one-time code expired")
	// ErrCodeInvalid: no one-time code is pending: it was already used, or never asked for.
	ErrCodeInvalid = errors.New("no one-time code pending")
	// ErrSessionInvalid: the session is unknown or ended by inactivity; log in again.
	ErrSessionInvalid = errors.New("voting session invalid")
	// ErrOutsideWindow: the request falls outside the voting window.
	ErrOutsideWindow = errors.New("outside the voting window")
	// ErrEnvelopeInvalid: the envelope does not open for this session or is malformed.
	ErrEnvelopeInvalid = errors.New("envelope refused")
	// ErrNotConfigured: the node lacks what the request needs (envelope or receipt key).
	ErrNotConfigured = errors.New("node not configured for this request")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client is closed")
	// ErrChaosDisabled: a chaos request reached a node whose configuration does not enable
	// chaos (CHAOS_DISABLED).
	ErrChaosDisabled = errors.New("chaos is not enabled on this node")
)

// reasonErrors maps every reason of urnepb/reasons.go to its sentinel.
var reasonErrors = map[string]error{
	urnepb.ReasonInvalid:          ErrInvalid,
	urnepb.ReasonNoElection:       ErrNoElection,
	urnepb.ReasonWrongElection:    ErrWrongElection,
	urnepb.ReasonWrongPhase:       ErrWrongPhase,
	urnepb.ReasonUnknownVoter:     ErrUnknownVoter,
	urnepb.ReasonAlreadyVoted:     ErrAlreadyVoted,
	urnepb.ReasonBallotTooLarge:   ErrBallotTooLarge,
	urnepb.ReasonDuplicateBallot:  ErrDuplicateBallot,
	urnepb.ReasonUnknownCommand:   ErrInternal,
	urnepb.ReasonNoLeader:         ErrUnavailable,
	urnepb.ReasonOutcomeUnknown:   ErrOutcomeUnknown,
	urnepb.ReasonNotFound:         ErrNotFound,
	urnepb.ReasonPermissionDenied: ErrPermissionDenied,
	urnepb.ReasonInternal:         ErrInternal,
	urnepb.ReasonSealed:           ErrSealed,
	urnepb.ReasonRuleViolated:     ErrRuleViolated,
	urnepb.ReasonNotAllowed:       ErrNotAllowed,
	urnepb.ReasonLocked:           ErrLocked,
	urnepb.ReasonAuthFailed:       ErrAuthFailed,
	urnepb.ReasonCodeExpired:      ErrCodeExpired,
	urnepb.ReasonCodeInvalid:      ErrCodeInvalid,
	urnepb.ReasonSessionInvalid:   ErrSessionInvalid,
	urnepb.ReasonOutsideWindow:    ErrOutsideWindow,
	urnepb.ReasonEnvelopeInvalid:  ErrEnvelopeInvalid,
	urnepb.ReasonNotConfigured:    ErrNotConfigured,
	urnepb.ReasonChaosDisabled:    ErrChaosDisabled,
}

// codeErrors maps status codes that arrive without an ErrorInfo (from gRPC itself, a proxy or
// an interceptor) to a sentinel.
var codeErrors = map[codes.Code]error{
	codes.InvalidArgument:  ErrInvalid,
	codes.NotFound:         ErrNotFound,
	codes.PermissionDenied: ErrPermissionDenied,
	codes.Unauthenticated:  ErrPermissionDenied,
	codes.Unavailable:      ErrUnavailable,
	codes.DeadlineExceeded: ErrUnavailable,
}

// Error is an error status returned by a node (or by the transport on the way to it).
type Error struct {
	// Endpoint is the address the request was sent to.
	Endpoint string
	// Code is the gRPC status code.
	Code codes.Code
	// Reason is the urnepb.ReasonXxx of the status, or "" when it carried no ErrorInfo.
	Reason string
	// Message is the node's own text.
	Message string

	kind   error
	status *status.Status
}

func (e *Error) Error() string {
	label := e.Reason
	if label == "" {
		label = e.Code.String()
	}
	return fmt.Sprintf("%s (%s from %s)", e.Message, label, e.Endpoint)
}

// Unwrap returns the sentinel error this status maps to.
func (e *Error) Unwrap() error { return e.kind }

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// errorFromStatus maps a status received from endpoint to an *Error.
func errorFromStatus(st *status.Status, endpoint string) *Error {
	e := &Error{Endpoint: endpoint, Code: st.Code(), Message: st.Message(), status: st}
	e.Reason = reasonOf(st)
	e.kind = reasonErrors[e.Reason]
	if e.kind == nil {
		e.kind = codeErrors[e.Code]
	}
	if e.kind == nil {
		e.kind = ErrInternal
	}
	return e
}

// reasonOf returns the reason of the first Urne ErrorInfo among the status details.
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == urnepb.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// asError converts any error returned by a gRPC call on endpoint to an *Error.
func asError(err error, endpoint string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errorFromStatus(status.Convert(err), endpoint)
}

// verdict says what the retry loop may do after a failed attempt.
type verdict int

const (
	// definitive: the node answered; sending the request again would get the same answer.
	definitive verdict = iota
	// notApplied: nothing happened (no leader); any request may be sent again.
	notApplied
	// maybeApplied: the request may have been applied; only a request that is idempotent
	// (it carries a request id, or is a read) may be sent again.
	maybeApplied
)

// classify decides whether a failed attempt may be retried.
func classify(e *Error) verdict {
	switch {
	case e.Reason == urnepb.ReasonNoLeader:
		return notApplied
	case e.Reason == urnepb.ReasonOutcomeUnknown:
		return maybeApplied
	case e.Reason != "":
		return definitive
	case e.Code == codes.Unavailable && neverConnected(e.Message):
		return notApplied
	case e.Code == codes.Unavailable, e.Code == codes.DeadlineExceeded:
		// A transport failure: the request may have reached the node before the connection broke.
		return maybeApplied
	}
	return definitive
}

// neverConnected recognizes the messages gRPC gives a call that failed because no connection
// could be established (refused, unreachable, TLS handshake refused): such a call was never
// sent, so a write that only met these failures is known not to have happened.
func neverConnected(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "error while dialing") || strings.Contains(msg, "authentication handshake failed")
}
