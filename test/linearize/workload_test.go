package linearize_test

import (
	"context"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/linearize"
)

// openElection creates the election of c with n voters v000001... and opens it.
func openElection(t *testing.T, c *harness.Cluster, n int) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Test"); err != nil {
		t.Fatal(err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", n))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
}

func endpoints(c *harness.Cluster) []string {
	var eps []string
	for _, n := range c.File.Nodes {
		eps = append(eps, n.GRPC)
	}
	return eps
}

// finish waits for the replicas, collects them and checks the history.
func finish(t *testing.T, c *harness.Cluster, h *linearize.History) linearize.Report {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	op := c.Client("operator")
	if err := linearize.WaitConverged(ctx, op, endpoints(c)); err != nil {
		t.Fatal(err)
	}
	ops := h.Ops()
	replicas, err := linearize.Collect(ctx, op, endpoints(c), ops)
	if err != nil {
		t.Fatal(err)
	}
	return linearize.Check(ops, replicas, linearize.Options{})
}

func TestWorkloadOnHealthyClusterPasses(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 300)
	app := c.Client("app")
	h := linearize.NewHistory()
	w := linearize.Workload{Voters: 300, VoterPrefix: "v", Workers: 8, Duration: 3 * time.Second, Endpoints: endpoints(c)}
	if err := w.Run(context.Background(), app, h); err != nil {
		t.Fatal(err)
	}
	r := finish(t, c, h)
	if !r.OK() {
		t.Fatalf("healthy cluster failed the check:\n%s", r)
	}
	kinds := map[linearize.Kind]int{}
	for _, op := range h.Ops() {
		if op.Outcome == linearize.OK || op.Refusal == linearize.RefusedAlreadyVoted {
			kinds[op.Kind]++
		}
	}
	for _, k := range []linearize.Kind{linearize.KindCast, linearize.KindHasVoted, linearize.KindCounts, linearize.KindStatus} {
		if kinds[k] == 0 {
			t.Errorf("no %s answered: %v", k, kinds)
		}
	}
	t.Logf("%s", r)
}

// TestCheckerCatchesStaleReadsOfACutFollower records stale reads of a follower cut off from
// the leader as if they were linearizable: the checker must reject the history.
func TestCheckerCatchesStaleReadsOfACutFollower(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 20)
	leader := c.WaitLeader()
	var follower string
	for _, id := range c.Running() {
		if id != leader {
			follower = id
			break
		}
	}
	c.Net.Isolate(follower)
	app := c.Client("app")
	ctx := harness.Context(t, time.Minute)
	h := linearize.NewHistory()
	for i := 1; i <= 5; i++ {
		v := harness.Voters("v", 5)[i-1].VoterId
		op := linearize.Op{Kind: linearize.KindCast, Voter: v, Request: client.NewRequestID(), Call: h.Now()}
		ballot := []byte("ballot " + v)
		resp, err := app.CastWithRequestID(ctx, op.Request, v, ballot)
		if err != nil {
			t.Fatal(err)
		}
		op.Return, op.Outcome, op.Ballot = h.Now(), linearize.OK, resp.Receipt.Fingerprint
		op.Receipt, op.EmargedAt = resp.Receipt.Fingerprint, resp.Receipt.EmargedAtUnixNano
		h.Add(op)
		read := linearize.Op{Kind: linearize.KindHasVoted, Voter: v, Call: h.Now(), Node: c.GRPC(follower)}
		got, err := app.HasVoted(ctx, v, client.Stale(), client.OnEndpoint(c.GRPC(follower)))
		if err != nil {
			t.Fatal(err)
		}
		read.Return, read.Outcome, read.Voted, read.EmargedAt = h.Now(), linearize.OK, got.Voted, got.EmargedAtUnixNano
		h.Add(read) // recorded as linearizable although it was not
	}
	r := linearize.Check(h.Ops(), nil, linearize.Options{})
	if r.OK() {
		t.Fatalf("stale reads of an isolated follower passed the check")
	}
	if r.Violations[0].Check != linearize.CheckLinearizable {
		t.Fatalf("violations %v, want %s", r.Violations, linearize.CheckLinearizable)
	}
}
