package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/urne-vote/urne/client/internal/fakeurne"
	"github.com/urne-vote/urne/transport/urnepb"
)

func TestRetryAfterOutcomeUnknownReusesRequestID(t *testing.T) {
	fc := startCluster(t, 3)
	unknown := fakeurne.Status(urnepb.ReasonOutcomeUnknown, "leadership lost while committing")
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "Cast", Times: 2, Err: unknown, AfterApply: true})
	c := newTestClient(t, fc, nil, nil)

	resp, err := c.Cast(context.Background(), "v000001", []byte("ballot"))
	if err != nil {
		t.Fatal(err)
	}
	calls := fc.Calls("Cast")
	if len(calls) != 3 {
		t.Fatalf("cluster received %d casts, want 3 (two unknown outcomes, then the answer)", len(calls))
	}
	for _, call := range calls {
		if call.RequestID != calls[0].RequestID || call.RequestID == "" {
			t.Fatalf("retries used request ids %v, want one id reused", calls)
		}
	}
	if !resp.GetReplayed() {
		t.Error("the answer is not the replayed first receipt")
	}
	var ballots int
	fc.Mutate(func(s *fakeurne.State) { ballots = len(s.Box) })
	if ballots != 1 {
		t.Errorf("box holds %d ballots, want 1", ballots)
	}
}

func TestEachCastGetsItsOwnRequestID(t *testing.T) {
	fc := startCluster(t, 1)
	c := newTestClient(t, fc, nil, nil)
	for _, v := range []string{"v000001", "v000002"} {
		if _, err := c.Cast(context.Background(), v, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	calls := fc.Calls("Cast")
	if len(calls) != 2 || calls[0].RequestID == calls[1].RequestID || len(calls[0].RequestID) != 32 {
		t.Fatalf("request ids %v: want two distinct 128-bit hex ids", calls)
	}
}

func TestLeaderDiscoverySkipsDeadEndpoint(t *testing.T) {
	fc := startCluster(t, 3)
	fc.SetLeader("n3")
	endpoints := []string{deadEndpoint(t, fc), fc.Node("n2").Addr, fc.Node("n3").Addr, fc.Node("n1").Addr}
	c := newTestClient(t, fc, endpoints, nil)

	if _, err := c.Cast(context.Background(), "v000001", []byte("ballot")); err != nil {
		t.Fatal(err)
	}
	if got := nodesOf(fc.Calls("Cast")); !slices.Equal(got, []string{"n3"}) {
		t.Errorf("cast went to %v, want straight to the leader n3", got)
	}
	if got := nodesOf(fc.Calls("Node")); !slices.Equal(got, []string{"n2"}) {
		t.Errorf("discovery asked %v, want n2 only (after the dead endpoint)", got)
	}
	leader, err := c.Leader(context.Background())
	if err != nil || leader.ID != "n3" || leader.Endpoint != fc.Node("n3").Addr {
		t.Errorf("Leader() = %+v, %v; want n3 at %s", leader, err, fc.Node("n3").Addr)
	}
}

func TestFollowsLeaderChange(t *testing.T) {
	fc := startCluster(t, 3)
	c := newTestClient(t, fc, nil, nil)
	if _, err := c.Cast(context.Background(), "v000001", []byte("first")); err != nil {
		t.Fatal(err)
	}
	// n1 loses leadership to n2 while the next cast is in flight.
	noLeader := fakeurne.Status(urnepb.ReasonNoLeader, "stepping down")
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "Cast", Times: 1, Err: noLeader, Then: func() { fc.SetLeader("n2") }})

	if _, err := c.Cast(context.Background(), "v000002", []byte("second")); err != nil {
		t.Fatal(err)
	}
	calls := fc.Calls("Cast")
	if got := nodesOf(calls); !slices.Equal(got, []string{"n1", "n1", "n2"}) {
		t.Errorf("casts went to %v, want n1, n1 (no leader), then the new leader n2", got)
	}
	if calls[1].RequestID != calls[2].RequestID {
		t.Error("the retry on the new leader used another request id")
	}
}

func TestDeadLeaderFailsOver(t *testing.T) {
	fc := startCluster(t, 3)
	c := newTestClient(t, fc, nil, nil)
	if _, err := c.Cast(context.Background(), "v000001", []byte("first")); err != nil {
		t.Fatal(err)
	}
	fc.Nodes[0].Stop()
	fc.SetLeader("n3")

	if _, err := c.Cast(context.Background(), "v000002", []byte("second")); err != nil {
		t.Fatalf("cast after the leader died: %v", err)
	}
	if got := nodesOf(fc.Calls("Cast")); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Errorf("casts went to %v, want n1 then n3", got)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	tests := []struct {
		name string
		run  func(c *Client) error
		want error
	}{
		{"cast without leader", func(c *Client) error {
			_, err := c.Cast(context.Background(), "v000001", []byte("b"))
			return err
		}, ErrUnavailable},
		{"linearizable read without leader", func(c *Client) error {
			_, err := c.Counts(context.Background())
			return err
		}, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := startCluster(t, 3)
			fc.SetLeader("")
			c := newTestClient(t, fc, nil, func(cfg *Config) { cfg.MaxAttempts = 4 })
			err := tt.run(c)
			if !errors.Is(err, tt.want) || errors.Is(err, ErrOutcomeUnknown) {
				t.Fatalf("error = %v, want %v only", err, tt.want)
			}
			calls := len(fc.Calls("Cast")) + len(fc.Calls("Counts"))
			if calls != 4 {
				t.Errorf("cluster received %d calls, want MaxAttempts = 4", calls)
			}
		})
	}
}

func TestGivesUpWhenEveryNodeIsDown(t *testing.T) {
	fc := startCluster(t, 2)
	for _, n := range fc.Nodes {
		n.Stop()
	}
	c := newTestClient(t, fc, nil, func(cfg *Config) { cfg.MaxAttempts = 3 })
	_, err := c.Cast(context.Background(), "v000001", []byte("b"))
	// Nothing could be sent, so the cast is known not to have happened.
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want ErrUnavailable", err)
	}
}

func TestUnknownOutcomeExhaustedIsReported(t *testing.T) {
	fc := startCluster(t, 1)
	unknown := fakeurne.Status(urnepb.ReasonOutcomeUnknown, "enqueue timed out")
	noLeader := fakeurne.Status(urnepb.ReasonNoLeader, "election under way")
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "Cast", Times: 1, Err: unknown, AfterApply: true})
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "Cast", Times: 1, Err: noLeader, Then: func() { fc.SetLeader("") }})
	c := newTestClient(t, fc, nil, func(cfg *Config) { cfg.MaxAttempts = 4 })

	_, err := c.Cast(context.Background(), "v000001", []byte("b"))
	// The first attempt may have been applied even though the last ones saw no leader.
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("error = %v, want ErrOutcomeUnknown", err)
	}
}

func TestDefinitiveErrorIsNotRetried(t *testing.T) {
	fc := startCluster(t, 3)
	c := newTestClient(t, fc, nil, nil)
	if _, err := c.Cast(context.Background(), "v000001", []byte("first")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Cast(context.Background(), "v000001", []byte("second"))
	if !errors.Is(err, ErrAlreadyVoted) {
		t.Fatalf("second cast: %v, want ErrAlreadyVoted", err)
	}
	if got := len(fc.Calls("Cast")); got != 2 {
		t.Errorf("cluster received %d casts, want 2", got)
	}
}

func TestContextEndsRetries(t *testing.T) {
	fc := startCluster(t, 1)
	fc.SetLeader("")
	c := newTestClient(t, fc, nil, func(cfg *Config) { cfg.MaxAttempts = 1000; cfg.Backoff = 20 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Counts(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want the context's deadline", err)
	}
	if n := len(fc.Calls("Counts")); n >= 100 {
		t.Errorf("%d attempts in 200ms: backoff not applied", n)
	}
}

func TestStaleReadOnOneEndpoint(t *testing.T) {
	fc := startCluster(t, 3)
	fc.SetLeader("")
	c := newTestClient(t, fc, nil, nil)
	counts, err := c.Counts(context.Background(), Stale(), OnEndpoint(fc.Node("n2").Addr))
	if err != nil {
		t.Fatalf("stale read without a leader: %v", err)
	}
	if counts.GetVoters() != 100 {
		t.Errorf("voters = %d, want 100", counts.GetVoters())
	}
	if got := nodesOf(fc.Calls("Counts")); !slices.Equal(got, []string{"n2"}) {
		t.Errorf("read served by %v, want n2", got)
	}
}

func TestTransferLeadershipIsNotRetriedAfterUnknownOutcome(t *testing.T) {
	fc := startCluster(t, 3)
	unknown := fakeurne.Status(urnepb.ReasonOutcomeUnknown, "transfer in progress")
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "TransferLeadership", Times: 1, Err: unknown})
	c := newTestClient(t, fc, nil, nil)
	_, err := c.TransferLeadership(context.Background(), "n2")
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("error = %v, want ErrOutcomeUnknown", err)
	}
	if got := len(fc.Calls("TransferLeadership")); got != 1 {
		t.Errorf("transfer sent %d times, want 1", got)
	}
}

func TestOperatorCalls(t *testing.T) {
	fc := startCluster(t, 3)
	c := newTestClient(t, fc, nil, nil)
	ctx := context.Background()
	if _, err := c.TransferLeadership(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	peers, err := c.Peers(ctx)
	if err != nil || peers.GetLeaderId() != "n2" || len(peers.GetPeers()) != 3 {
		t.Fatalf("Peers = %v, %v; want 3 peers led by n2", peers, err)
	}
	if got := nodesOf(fc.Calls("Peers")); !slices.Equal(got, []string{"n2"}) {
		t.Errorf("Peers served by %v, want the new leader n2", got)
	}
	info, err := c.Node(ctx, fc.Node("n3").Addr)
	if err != nil || info.GetId() != "n3" || info.GetLeaderId() != "n2" {
		t.Errorf("Node(n3) = %v, %v", info, err)
	}
	if d, err := c.StateDigest(ctx, fc.Node("n1").Addr); err != nil || d.GetNodeId() != "n1" || len(d.GetDigest()) == 0 {
		t.Errorf("StateDigest(n1) = %v, %v", d, err)
	}
	if k, err := c.RotateKey(ctx, fc.Node("n1").Addr); err != nil || k.GetNodeId() != "n1" {
		t.Errorf("RotateKey(n1) = %v, %v", k, err)
	}
	if err := c.RemoveServer(ctx, "n3"); err != nil {
		t.Errorf("RemoveServer: %v", err)
	}
}

func TestElectionLifecycle(t *testing.T) {
	fc := fakeurne.Start(t, newCA(t, testElection), 3)
	c := newTestClient(t, fc, nil, nil)
	ctx := context.Background()
	if _, err := c.Cast(ctx, "v1", []byte("b")); !errors.Is(err, ErrNoElection) {
		t.Fatalf("cast before creation: %v, want ErrNoElection", err)
	}
	if _, err := c.CreateElection(ctx, testElection, "CSE 2026"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateElection(ctx, "another", "x"); !errors.Is(err, ErrWrongElection) {
		t.Fatalf("second election: %v, want ErrWrongElection", err)
	}
	voters := []*urnepb.Voter{{VoterId: "v1"}}
	if _, err := c.ImportVoters(ctx, sliceRoll(voters)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cast(ctx, "v1", []byte("b")); !errors.Is(err, ErrWrongPhase) {
		t.Fatalf("cast before opening: %v, want ErrWrongPhase", err)
	}
	if st, err := c.OpenElection(ctx); err != nil || st.GetPhase() != urnepb.ElectionPhase_PHASE_OPEN {
		t.Fatalf("open: %v, %v", st, err)
	}
	if _, err := c.Cast(ctx, "v1", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.HasVoted(ctx, "v1"); err != nil || !v.GetVoted() {
		t.Fatalf("HasVoted(v1) = %v, %v", v, err)
	}
	if st, err := c.CloseElection(ctx); err != nil || st.GetPhase() != urnepb.ElectionPhase_PHASE_CLOSED {
		t.Fatalf("close: %v, %v", st, err)
	}
	if st, err := c.GetElection(ctx, Stale()); err != nil || st.GetElectionId() != testElection {
		t.Fatalf("GetElection = %v, %v", st, err)
	}
}

func TestCastWithEmptyRequestIDIsRefused(t *testing.T) {
	fc := startCluster(t, 1)
	c := newTestClient(t, fc, nil, nil)
	if _, err := c.CastWithRequestID(context.Background(), "", "v000001", []byte("b")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("error = %v, want ErrInvalid", err)
	}
	if len(fc.Calls("Cast")) != 0 {
		t.Error("a cast without request id reached the cluster")
	}
}

func TestClosedClient(t *testing.T) {
	fc := startCluster(t, 1)
	c := newTestClient(t, fc, nil, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Counts(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("error = %v, want ErrClosed", err)
	}
}

// Logins and sealed casts are checked or opened by the node that receives them: the client
// sends them round the nodes, so that the cost of slow hashes and envelopes spreads over the
// cluster, and a dead node only costs a retry on the next one.
func TestReceiverWorkSpreadsOverTheNodes(t *testing.T) {
	fc := startCluster(t, 3)
	c := newTestClient(t, fc, []string{fc.Nodes[0].Addr, deadEndpoint(t, fc), fc.Nodes[1].Addr, fc.Nodes[2].Addr}, nil)
	for i := range 9 {
		if _, err := c.CastSealed(context.Background(), fmt.Sprintf("request-%d", i), "token", "s1", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Login(context.Background(), fmt.Sprintf("id-%d", i), "secret"); err != nil {
			t.Fatal(err)
		}
	}
	for _, method := range []string{"CastSealed", "Login"} {
		perNode := map[string]int{}
		for _, n := range nodesOf(fc.Calls(method)) {
			perNode[n]++
		}
		if len(perNode) != 3 {
			t.Fatalf("%s calls reached %v, want every live node", method, perNode)
		}
		for n, got := range perNode {
			if got < 2 {
				t.Fatalf("%s calls per node %v: node %s got %d of 9", method, perNode, n, got)
			}
		}
	}
}
