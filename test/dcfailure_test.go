package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
)

// TestLosingADatacenterKeepsTheElectionRunning stops both nodes of one datacenter of a 2+2+1
// cluster, keeps casting on the three survivors, restarts the datacenter and checks that it
// catches up with every ballot: for dc1, then for dc2.
func TestLosingADatacenterKeepsTheElectionRunning(t *testing.T) {
	c := harness.New(t, "2+2+1")
	openElection(t, c, 200)
	app := c.Client("app")
	ctx := harness.Context(t, 2*time.Minute)
	cast := 0
	castMore := func(n int) {
		t.Helper()
		for range n {
			cast++
			v := fmt.Sprintf("v%06d", cast)
			if _, err := app.Cast(ctx, v, ballotOf(v)); err != nil {
				t.Fatalf("cast %s: %v", v, err)
			}
		}
	}
	castMore(20)
	for _, dc := range []string{"dc1", "dc2"} {
		lost := []string{dc + "-a", dc + "-b"}
		for _, id := range lost {
			c.Stop(id)
		}
		t.Logf("%s stopped; %s leads", dc, c.WaitLeader())
		castMore(30)
		for _, id := range lost {
			c.Start(id)
		}
		c.WaitLeader()
		c.AssertSameState()
		for _, id := range c.Running() {
			counts, err := app.Counts(ctx, client.OnEndpoint(c.GRPC(id)), client.Stale())
			if err != nil {
				t.Fatal(err)
			}
			if counts.Ballots != uint64(cast) || counts.Emargements != uint64(cast) {
				t.Fatalf("after losing %s, %s holds %d ballots and %d émargements, want %d", dc, id, counts.Ballots, counts.Emargements, cast)
			}
		}
	}
}
