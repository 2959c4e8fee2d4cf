package test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// appOn dials one node as the election app.
func appOn(t *testing.T, c *harness.Cluster, nodeID string) urnepb.ElectionClient {
	t.Helper()
	cc, err := grpc.NewClient(c.GRPC(nodeID), grpc.WithTransportCredentials(credentials.NewTLS(mustTLS(t, c, "app", nodeID))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return urnepb.NewElectionClient(cc)
}

// TestAuthStepsRetriedWithTheirRequestID sends every authentication step twice with the same
// request id, the second time to another node, as a client does after an unknown outcome: a
// wrong secret counts once, a code is sent once, and the retries get the first answers.
func TestAuthStepsRetriedWithTheirRequestID(t *testing.T) {
	lc := startLegalCluster(t)
	ctx := harness.Context(t, 2*time.Minute)
	lc.draft(t)
	must(t, "seal", errOf(lc.bureau.SealElection(ctx)))
	must(t, "issue identifiers", errOf(lc.organizer.IssueIdentifiers(ctx, "")))
	lc.clock.Advance(2 * time.Minute)
	must(t, "open", errOf(lc.bureau.OpenElection(ctx)))
	v := legalVoters[0]
	identifier := lc.identifier(t, v.id)
	nodes := []urnepb.ElectionClient{appOn(t, lc.Cluster, lc.File.Nodes[0].ID), appOn(t, lc.Cluster, lc.File.Nodes[1].ID)}
	twice := func(call func(context.Context, urnepb.ElectionClient) error) {
		for _, n := range nodes {
			if err := call(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	}

	twice(func(ctx context.Context, n urnepb.ElectionClient) error {
		_, err := n.Login(ctx, &urnepb.LoginRequest{Identifier: identifier, Secret: "0000", RequestId: "wrong-secret-request"})
		wantReason(t, "wrong secret", err, urnepb.ReasonAuthFailed)
		return nil
	})
	if st, err := lc.operator.GetAccount(ctx, v.id); err != nil || st.Failures != 1 {
		t.Fatalf("after a wrong secret sent twice with one request id: %v, %v; want 1 failure", st, err)
	}
	// The same request id with another secret is another guess: it counts.
	_, err := nodes[0].Login(ctx, &urnepb.LoginRequest{Identifier: identifier, Secret: "1111", RequestId: "wrong-secret-request"})
	wantReason(t, "another wrong secret under the same request id", err, urnepb.ReasonAuthFailed)
	if st, err := lc.operator.GetAccount(ctx, v.id); err != nil || st.Failures != 2 {
		t.Fatalf("after another secret under the same request id: %v, %v; want 2 failures", st, err)
	}

	var tokens []string
	twice(func(ctx context.Context, n urnepb.ElectionClient) error {
		r, err := n.Login(ctx, &urnepb.LoginRequest{Identifier: identifier, Secret: v.secret, RequestId: "login-request"})
		tokens = append(tokens, r.GetChallengeToken())
		return err
	})
	if tokens[0] == "" || tokens[0] != tokens[1] {
		t.Fatalf("a retried login gave challenge %q then %q", tokens[0], tokens[1])
	}
	twice(func(ctx context.Context, n urnepb.ElectionClient) error {
		_, err := n.RequestCode(ctx, &urnepb.RequestCodeRequest{ChallengeToken: tokens[0], Phone: v.phone, RequestId: "code-request"})
		return err
	})
	code := lc.code(t, v.phone, 1)
	var sessions []*urnepb.VerifyCodeResponse
	twice(func(ctx context.Context, n urnepb.ElectionClient) error {
		_, err := n.VerifyCode(ctx, &urnepb.VerifyCodeRequest{ChallengeToken: tokens[0], Code: "999999", RequestId: "wrong-code-request"})
		if code != "999999" {
			wantReason(t, "wrong code", err, urnepb.ReasonAuthFailed)
		}
		return nil
	})
	failures := func() uint32 {
		st, err := lc.operator.GetAccount(ctx, v.id)
		must(t, "account", err)
		return st.Failures
	}
	if code != "999999" && code != "999998" {
		if n := failures(); n != 3 {
			t.Fatalf("after a wrong code sent twice with one request id: %d failures, want 3", n)
		}
		// Likewise another code under the same request id is another guess.
		_, err := nodes[1].VerifyCode(ctx, &urnepb.VerifyCodeRequest{ChallengeToken: tokens[0], Code: "999998", RequestId: "wrong-code-request"})
		wantReason(t, "another wrong code under the same request id", err, urnepb.ReasonAuthFailed)
		if n := failures(); n != 4 {
			t.Fatalf("after another code under the same request id: %d failures, want 4", n)
		}
	}
	twice(func(ctx context.Context, n urnepb.ElectionClient) error {
		s, err := n.VerifyCode(ctx, &urnepb.VerifyCodeRequest{ChallengeToken: tokens[0], Code: code, RequestId: "verify-request"})
		sessions = append(sessions, s)
		return err
	})
	if sessions[0].SessionToken != sessions[1].SessionToken || !bytes.Equal(sessions[0].EnvelopeNonce, sessions[1].EnvelopeNonce) {
		t.Fatalf("a retried verification gave sessions %v then %v", sessions[0], sessions[1])
	}
	if n := lc.sms.count(v.phone); n != 1 {
		t.Fatalf("%d SMS sent for one code request sent twice", n)
	}
	if st, err := lc.operator.GetAccount(ctx, v.id); err != nil || st.Failures != 0 {
		t.Fatalf("after the session opened: %v, %v; want the failures reset", st, err)
	}
}

// wantReason checks the reason a node gave for refusing a call.
func wantReason(t *testing.T, what string, err error, reason string) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == reason {
			return
		}
	}
	t.Fatalf("%s: %v, want reason %s", what, err, reason)
}
