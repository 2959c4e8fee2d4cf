package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/recovery"
	"github.com/urne-vote/urne/test/harness"
)

func TestChoose(t *testing.T) {
	on := func(id string, last, term, commit uint64) recovery.SurvivorState {
		return recovery.SurvivorState{ID: id, Answered: true, LastIndex: last, LastTerm: term, CommitIndex: commit, AppliedIndex: commit}
	}
	disk := func(id string, last, term, applied uint64) recovery.SurvivorState {
		return recovery.SurvivorState{ID: id, OnDisk: true, LastIndex: last, LastTerm: term, AppliedIndex: applied}
	}
	tests := []struct {
		name     string
		states   []recovery.SurvivorState
		chosen   string
		problems int
	}{
		{"longest log", []recovery.SurvivorState{on("a", 100, 3, 90), on("b", 105, 3, 95)}, "b", 0},
		{"higher last term wins over a longer log", []recovery.SurvivorState{on("a", 120, 2, 90), on("b", 105, 3, 95)}, "b", 0},
		{"stopped survivor read from disk", []recovery.SurvivorState{on("a", 100, 3, 99), disk("b", 110, 3, 101)}, "b", 0},
		{"unknown survivor", []recovery.SurvivorState{on("a", 100, 3, 99), {ID: "b", Error: "unreachable"}}, "a", 1},
		{"committed beyond every log", []recovery.SurvivorState{on("a", 100, 3, 120)}, "a", 1},
		{"nobody", []recovery.SurvivorState{{ID: "a"}}, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chosen, _, problems := recovery.Choose(tt.states)
			if chosen != tt.chosen || len(problems) != tt.problems {
				t.Fatalf("chose %q with problems %q, want %q with %d", chosen, problems, tt.chosen, tt.problems)
			}
		})
	}
}

// harnessProcs runs the nodes of a harness cluster in this process.
type harnessProcs struct{ c *harness.Cluster }

func (p harnessProcs) Running(id string) bool { return p.c.Node(id) != nil }
func (p harnessProcs) Stop(id string) error   { p.c.Stop(id); return nil }
func (p harnessProcs) Kill(id string) error   { p.c.Stop(id); return nil }
func (p harnessProcs) Start(_ context.Context, id string) error {
	return p.c.TryStart(id)
}

// lose2of4 runs a 2+2 cluster with some ballots, then stops dc1: dc2 has no quorum.
func lose2of4(t *testing.T) (*harness.Cluster, *client.Client, int) {
	c := harness.New(t, "2+2")
	openElection(t, c, 100)
	app := c.Client("app")
	ctx := harness.Context(t, time.Minute)
	for i := 1; i <= 20; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(ctx, v, []byte("ballot of "+v)); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop("dc1-a")
	c.Stop("dc1-b")
	return c, app, 20
}

// TestPromoteDCAfterLosingHalfOfA22Cluster: with dc1 gone, dc2 is promoted, takes ballots with
// none lost, and dc1 rejoins as voters once back.
func TestPromoteDCAfterLosingHalfOfA22Cluster(t *testing.T) {
	c, app, cast := lose2of4(t)
	ctx := harness.Context(t, 2*time.Minute)
	r, err := recovery.Promote(ctx, recovery.PromoteOptions{Dir: c.Dir, File: c.File, DC: "dc2",
		Client: c.Client("operator"), Procs: harnessProcs{c}, Logf: t.Logf})
	if err != nil {
		t.Fatalf("promote: %v (report %+v)", err, r)
	}
	if len(r.Problems) != 0 || len(r.Voters) != 2 || r.KnownCommit == 0 {
		t.Fatalf("report %+v", r)
	}
	for i := cast + 1; i <= cast+10; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(ctx, v, []byte("ballot of "+v)); err != nil {
			t.Fatalf("cast after the promotion: %v", err)
		}
	}
	c.Start("dc1-a")
	c.Start("dc1-b")
	harness.Poll(t, time.Minute, func() error {
		peers, err := c.Client("operator").Peers(ctx)
		if err != nil {
			return err
		}
		for _, p := range peers.GetPeers() {
			if p.GetSuffrage() != "voter" {
				return fmt.Errorf("%s is %s", p.GetId(), p.GetSuffrage())
			}
		}
		if len(peers.GetPeers()) != 4 {
			return fmt.Errorf("%d servers", len(peers.GetPeers()))
		}
		return nil
	})
	c.AssertSameState()
	counts, err := app.Counts(ctx)
	if err != nil || counts.Ballots != uint64(cast+10) {
		t.Fatalf("counts %v, %v; want %d ballots", counts, err, cast+10)
	}
}

// TestPromoteDCRefusals: a survivor neither reachable nor readable, a datacenter that still
// answers, and a cluster that has a leader are refused.
func TestPromoteDCRefusals(t *testing.T) {
	c, _, _ := lose2of4(t)
	ctx := harness.Context(t, 2*time.Minute)
	opts := recovery.PromoteOptions{Dir: c.Dir, File: c.File, Client: c.Client("operator"), Procs: harnessProcs{c}, Wait: 30 * time.Second}

	opts.DC = "dc1"
	if _, err := recovery.Promote(ctx, opts); !errors.Is(err, recovery.ErrOtherSideAlive) {
		t.Fatalf("promoting the lost side while dc2 answers: %v", err)
	}
	opts.DC = "dc2"
	c.Stop("dc2-b")
	data := c.DataDir("dc2-b")
	if err := os.Rename(data, data+".away"); err != nil {
		t.Fatal(err)
	}
	_, err := recovery.Promote(ctx, opts)
	if !errors.Is(err, recovery.ErrUnsafe) || !strings.Contains(err.Error(), "dc2-b") {
		t.Fatalf("promote with dc2-b unknown: %v", err)
	}
	if c.Node("dc2-a") == nil {
		t.Fatal("a refused promotion left dc2-a stopped")
	}
	opts.Force = true
	r, err := recovery.Promote(ctx, opts)
	if err != nil || r.Chosen != "dc2-a" || len(r.Problems) == 0 {
		t.Fatalf("forced promote: %+v, %v", r, err)
	}
	opts.Force = false
	if _, err := recovery.Promote(ctx, opts); !errors.Is(err, recovery.ErrNotNeeded) {
		t.Fatalf("promote while dc2-a leads: %v", err)
	}
}
