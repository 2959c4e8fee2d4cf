package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/urne-vote/urne/client/internal/fakeurne"
	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestEveryReasonMapsToItsError(t *testing.T) {
	const attempts = 3
	tests := []struct {
		reason string
		want   error
		calls  int // Cast calls the cluster receives
	}{
		{urnepb.ReasonInvalid, ErrInvalid, 1},
		{urnepb.ReasonNoElection, ErrNoElection, 1},
		{urnepb.ReasonWrongElection, ErrWrongElection, 1},
		{urnepb.ReasonWrongPhase, ErrWrongPhase, 1},
		{urnepb.ReasonUnknownVoter, ErrUnknownVoter, 1},
		{urnepb.ReasonAlreadyVoted, ErrAlreadyVoted, 1},
		{urnepb.ReasonBallotTooLarge, ErrBallotTooLarge, 1},
		{urnepb.ReasonDuplicateBallot, ErrDuplicateBallot, 1},
		{urnepb.ReasonUnknownCommand, ErrInternal, 1},
		{urnepb.ReasonChaosDisabled, ErrChaosDisabled, 1},
		{urnepb.ReasonNotFound, ErrNotFound, 1},
		{urnepb.ReasonPermissionDenied, ErrPermissionDenied, 1},
		{urnepb.ReasonInternal, ErrInternal, 1},
		{urnepb.ReasonNoLeader, ErrUnavailable, attempts},
		{urnepb.ReasonOutcomeUnknown, ErrOutcomeUnknown, attempts},
		{urnepb.ReasonSealed, ErrSealed, 1},
		{urnepb.ReasonRuleViolated, ErrRuleViolated, 1},
		{urnepb.ReasonNotAllowed, ErrNotAllowed, 1},
		{urnepb.ReasonLocked, ErrLocked, 1},
		{urnepb.ReasonAuthFailed, ErrAuthFailed, 1},
		{urnepb.ReasonCodeExpired, ErrCodeExpired, 1},
		{urnepb.ReasonCodeInvalid, ErrCodeInvalid, 1},
		{urnepb.ReasonSessionInvalid, ErrSessionInvalid, 1},
		{urnepb.ReasonOutsideWindow, ErrOutsideWindow, 1},
		{urnepb.ReasonEnvelopeInvalid, ErrEnvelopeInvalid, 1},
		{urnepb.ReasonNotConfigured, ErrNotConfigured, 1},
	}
	if len(tests) != len(fakeurne.Codes) {
		t.Fatalf("table covers %d reasons, urnepb defines %d", len(tests), len(fakeurne.Codes))
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			fc := startCluster(t, 3)
			for _, n := range fc.Nodes {
				n.Inject(fakeurne.Fault{Method: "Cast", Times: 100, Err: fakeurne.Status(tt.reason, "node says %s", tt.reason)})
			}
			c := newTestClient(t, fc, nil, func(cfg *Config) { cfg.MaxAttempts = attempts })
			_, err := c.Cast(context.Background(), "v000001", []byte("ballot"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Cast error = %v, want errors.Is %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "node says "+tt.reason) {
				t.Errorf("error %q lost the node's message", err)
			}
			if got := len(fc.Calls("Cast")); got != tt.calls {
				t.Errorf("cluster received %d casts, want %d", got, tt.calls)
			}
			if tt.want == ErrOutcomeUnknown {
				if errors.Is(err, ErrUnavailable) {
					t.Errorf("an unknown outcome must not read as ErrUnavailable (not applied): %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != tt.reason || e.Code != fakeurne.Codes[tt.reason] {
				t.Errorf("errors.As *Error = %+v, want reason %s", e, tt.reason)
			}
		})
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	fc := startCluster(t, 1)
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "Cast", Times: 1, Err: fakeurne.Status(urnepb.ReasonAlreadyVoted, "voter v000001 has already voted")})
	c := newTestClient(t, fc, nil, nil)
	_, err := c.Cast(context.Background(), "v000001", []byte("b"))
	for _, other := range []error{ErrInvalid, ErrUnavailable, ErrOutcomeUnknown, ErrDuplicateBallot, ErrInternal} {
		if errors.Is(err, other) {
			t.Errorf("ALREADY_VOTED error also matches %v", other)
		}
	}
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("status.Code = %v, want AlreadyExists: the original status must stay visible", status.Code(err))
	}
}

func TestStatusWithoutDetails(t *testing.T) {
	tests := []struct {
		code    codes.Code
		msg     string
		want    error
		verdict verdict
	}{
		{codes.Unavailable, "connection reset by peer", ErrUnavailable, maybeApplied},
		{codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp: connection refused"`, ErrUnavailable, notApplied},
		{codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: bad cert"`, ErrUnavailable, notApplied},
		{codes.DeadlineExceeded, "context deadline exceeded", ErrUnavailable, maybeApplied},
		{codes.PermissionDenied, "role app may not do this", ErrPermissionDenied, definitive},
		{codes.Unauthenticated, "no client certificate", ErrPermissionDenied, definitive},
		{codes.InvalidArgument, "bad", ErrInvalid, definitive},
		{codes.Internal, "boom", ErrInternal, definitive},
		{codes.Unimplemented, "unknown method", ErrInternal, definitive},
	}
	for _, tt := range tests {
		e := errorFromStatus(status.New(tt.code, tt.msg), "127.0.0.1:1")
		if !errors.Is(e, tt.want) || classify(e) != tt.verdict {
			t.Errorf("%v %q: errors.Is %v = false or verdict %v != %v", tt.code, tt.msg, tt.want, classify(e), tt.verdict)
		}
	}
}

func TestErrorInfoOfAnotherDomainIsIgnored(t *testing.T) {
	st, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{Domain: "other.example", Reason: urnepb.ReasonAlreadyVoted})
	e := errorFromStatus(st, "127.0.0.1:1")
	if e.Reason != "" || errors.Is(e, ErrAlreadyVoted) {
		t.Fatalf("reason of another domain was taken: %+v", e)
	}
}

func FuzzErrorFromStatus(f *testing.F) {
	f.Add(uint32(codes.Unavailable), "no leader", urnepb.ErrorDomain, urnepb.ReasonNoLeader)
	f.Add(uint32(codes.AlreadyExists), "voted", urnepb.ErrorDomain, urnepb.ReasonAlreadyVoted)
	f.Add(uint32(99), "", "", "")
	f.Fuzz(func(t *testing.T, code uint32, msg, domain, reason string) {
		st := status.New(codes.Code(code), msg)
		if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason}); err == nil {
			st = withInfo
		}
		e := errorFromStatus(st, "127.0.0.1:1")
		if e.Unwrap() == nil || e.Error() == "" {
			t.Fatalf("status %v mapped to %+v", st, e)
		}
		if v := classify(e); v != definitive && e.Reason != "" && !urnepb.Retryable(e.Reason) {
			t.Fatalf("reason %q is retried but urnepb says it is not retryable", e.Reason)
		}
	})
}
