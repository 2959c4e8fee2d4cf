package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// openElection creates an election with n voters and opens it.
func openElection(t *testing.T, c *harness.Cluster, n int) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Test election"); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", n))); err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
}

func ballotOf(voter string) []byte { return []byte("ballot of " + voter) }

func TestReplicatesAndSurvivesLeaderLoss(t *testing.T) {
	c := harness.New(t, "2+2+1")
	openElection(t, c, 100)
	app := c.Client("app")
	ctx := harness.Context(t, time.Minute)
	acked := map[string][]byte{}
	cast := func(from, to int) {
		for i := from; i <= to; i++ {
			v := fmt.Sprintf("v%06d", i)
			r, err := app.Cast(ctx, v, ballotOf(v))
			if err != nil {
				t.Fatalf("cast %s: %v", v, err)
			}
			acked[v] = r.Receipt.Fingerprint
		}
	}
	cast(1, 30)
	old := c.WaitLeader()
	c.Stop(old)
	cast(31, 60)
	if now := c.WaitLeader(); now == old {
		t.Fatalf("leader did not change")
	}
	c.Start(old)
	cast(61, 70)
	c.AssertSameState()
	for _, id := range c.Running() {
		counts, err := app.Counts(ctx, client.OnEndpoint(c.GRPC(id)), client.Stale())
		if err != nil {
			t.Fatalf("counts on %s: %v", id, err)
		}
		if counts.Ballots != 70 || counts.Emargements != 70 || counts.Voters != 100 {
			t.Fatalf("%s: counts %v, want 70 ballots, 70 émargements, 100 voters", id, counts)
		}
	}
	present := map[string]bool{}
	if err := app.Fingerprints(ctx, func(fp []byte) error { present[string(fp)] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for v, fp := range acked {
		if !present[string(fp)] {
			t.Fatalf("acknowledged ballot of %s missing", v)
		}
	}
}

func TestRetriedCastReturnsFirstReceiptAndRefusesSecondBallot(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 10)
	app := c.Client("app")
	ctx := harness.Context(t, 30*time.Second)
	first, err := app.CastWithRequestID(ctx, "req-1", "v000001", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := app.CastWithRequestID(ctx, "req-1", "v000001", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || !bytes.Equal(again.Receipt.Fingerprint, first.Receipt.Fingerprint) ||
		again.Receipt.EmargedAtUnixNano != first.Receipt.EmargedAtUnixNano {
		t.Fatalf("retry gave %v, want the first receipt %v", again, first)
	}
	if _, err := app.CastWithRequestID(ctx, "req-2", "v000001", []byte("two")); !errors.Is(err, client.ErrAlreadyVoted) {
		t.Fatalf("second ballot: %v, want ErrAlreadyVoted", err)
	}
	c.WaitConverged()
	counts, err := app.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Ballots != 1 {
		t.Fatalf("ballots = %d, want 1", counts.Ballots)
	}
}

func TestBadRequestsGetClearErrorsAndChangeNothing(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 5)
	app := c.Client("app")
	ctx := harness.Context(t, 30*time.Second)
	cases := []struct {
		name  string
		voter string
		data  []byte
		want  error
	}{
		{"unknown voter", "nobody", []byte("x"), client.ErrUnknownVoter},
		{"oversized ballot", "v000001", make([]byte, 65<<10), client.ErrBallotTooLarge},
		{"empty ballot", "v000002", nil, client.ErrInvalid},
		{"empty voter id", "", []byte("x"), client.ErrInvalid},
	}
	for _, tc := range cases {
		_, err := app.Cast(ctx, tc.voter, tc.data)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "another-election", "x"); !errors.Is(err, client.ErrWrongElection) {
		t.Errorf("create of another election: %v, want ErrWrongElection", err)
	}
	for _, v := range []string{"v000001", "v000002"} {
		if got, err := app.HasVoted(ctx, v); err != nil || got.Voted {
			t.Fatalf("refused cast of %s left an émargement: %v %v", v, got, err)
		}
	}
	counts, err := app.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Ballots != 0 || counts.Emargements != 0 {
		t.Fatalf("refused casts left %d ballots, %d émargements", counts.Ballots, counts.Emargements)
	}
}

func TestRolesAreEnforced(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 2)
	ctx := harness.Context(t, 30*time.Second)
	if _, err := c.Client("operator").Cast(ctx, "v000001", []byte("x")); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("operator cast: %v, want ErrPermissionDenied", err)
	}
	if _, err := c.Client("app").OpenElection(ctx); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("app open: %v, want ErrPermissionDenied", err)
	}
}

func TestFollowerReadsAreLinearizable(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 50)
	leader := c.WaitLeader()
	var follower string
	for _, id := range c.Running() {
		if id != leader {
			follower = id
		}
	}
	app := c.Client("app", leader)
	reader := c.Client("app", follower)
	ctx := harness.Context(t, 30*time.Second)
	for i := 1; i <= 20; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(ctx, v, ballotOf(v)); err != nil {
			t.Fatal(err)
		}
		got, err := reader.HasVoted(ctx, v, client.OnEndpoint(c.GRPC(follower)))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Voted {
			t.Fatalf("follower read after acknowledged cast of %s does not see it", v)
		}
	}
}

func TestWritesToFollowerAreForwarded(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 5)
	leader := c.WaitLeader()
	follower := "dc1-a"
	if follower == leader {
		follower = "dc1-b"
	}
	// A raw gRPC connection to the follower alone: the client library would go to the leader.
	cfg, _, err := client.LoadClusterDir(c.Dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.GRPC(follower), grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := harness.Context(t, 30*time.Second)
	resp, err := urnepb.NewElectionClient(conn).Cast(ctx, &urnepb.CastRequest{RequestId: "r1", VoterId: "v000001", Ballot: ballotOf("v000001")})
	if err != nil {
		t.Fatalf("cast through follower %s: %v", follower, err)
	}
	if len(resp.Receipt.GetFingerprint()) != 32 {
		t.Fatalf("receipt without fingerprint: %v", resp)
	}
	got, err := c.Client("app", leader).HasVoted(ctx, "v000001")
	if err != nil || !got.Voted {
		t.Fatalf("forwarded cast not on the leader: %v %v", got, err)
	}
}

func TestFullClusterRestartKeepsEverything(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 20)
	app := c.Client("app")
	ctx := harness.Context(t, time.Minute)
	for i := 1; i <= 10; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(ctx, v, ballotOf(v)); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged()
	before := c.Digests()
	c.StopAll()
	for _, n := range c.File.Nodes {
		c.Start(n.ID)
	}
	c.WaitLeader()
	c.WaitConverged()
	// No command was applied since: every node's digest, applied index included, is unchanged.
	after := c.Digests()
	for id, d := range before {
		if after[id] != d {
			t.Fatalf("%s: state %s before restart, %s after", id, d, after[id])
		}
	}
	counts, err := c.Client("app").Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Ballots != 10 || counts.Voters != 20 || counts.Phase != urnepb.ElectionPhase_PHASE_OPEN {
		t.Fatalf("after restart: %v", counts)
	}
	if _, err := app.Cast(ctx, "v000001", ballotOf("again")); !errors.Is(err, client.ErrAlreadyVoted) {
		t.Fatalf("émargement lost across restart: %v", err)
	}
}

func TestPartitionedLeaderCannotAcknowledge(t *testing.T) {
	c := harness.New(t, "2+2+1")
	openElection(t, c, 20)
	old := c.WaitLeader()
	c.Net.Isolate(old)
	// The isolated leader must not acknowledge: its write either fails or stays unknown.
	lone := c.Client("app", old)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := lone.Cast(ctx, "v000001", ballotOf("v000001")); err == nil {
		t.Fatalf("an isolated leader acknowledged a cast")
	}
	// The majority elects a new leader and takes writes.
	var others []string
	for _, id := range c.Running() {
		if id != old {
			others = append(others, id)
		}
	}
	maj := c.Client("app", others...)
	harness.Poll(t, 20*time.Second, func() error {
		_, err := maj.Cast(harness.Context(t, 5*time.Second), "v000002", ballotOf("v000002"))
		if errors.Is(err, client.ErrAlreadyVoted) {
			return nil
		}
		return err
	})
	c.Net.Heal()
	c.WaitLeader()
	c.AssertSameState()
	got, err := maj.HasVoted(harness.Context(t, 10*time.Second), "v000002")
	if err != nil || !got.Voted {
		t.Fatalf("write to the majority lost after heal: %v %v", got, err)
	}
}

func TestWitnessHandsLeadershipBack(t *testing.T) {
	c := harness.New(t, "2+2+1")
	op := c.Client("operator")
	// Ask for the witness until it has led once (a transfer can time out on a loaded machine):
	// it takes leadership, then must give it to a datacenter node.
	harness.Poll(t, time.Minute, func() error {
		if strings.Contains(c.Log("wit-a"), "witness holds leadership") {
			return nil
		}
		_, err := op.TransferLeadership(harness.Context(t, 10*time.Second), "wit-a")
		return fmt.Errorf("witness has not led yet (last transfer: %v)", err)
	})
	harness.Poll(t, 30*time.Second, func() error {
		if l := c.WaitLeader(); l == "wit-a" {
			return fmt.Errorf("witness still leads")
		}
		return nil
	})
}

func TestNewServerJoinsAsNonvoterAndIsPromoted(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 5)
	// A fourth node built from dc1-c's identity but not in the bootstrap list.
	cfg := c.Config("dc1-c")
	c.Stop("dc1-c")
	op := c.Client("operator", "dc1-a", "dc1-b")
	ctx := harness.Context(t, 30*time.Second)
	if err := op.RemoveServer(ctx, "dc1-c"); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Bootstrap = nil
	if err := c.TryStartConfig(cfg); err != nil {
		t.Fatal(err)
	}
	sawNonvoter := false
	harness.Poll(t, 30*time.Second, func() error {
		l := c.Node(c.WaitLeader())
		for _, s := range l.Raft().GetConfiguration().Configuration().Servers {
			if s.ID != "dc1-c" {
				continue
			}
			if s.Suffrage == raft.Nonvoter {
				sawNonvoter = true
				return fmt.Errorf("dc1-c is still a nonvoter")
			}
			return nil
		}
		return fmt.Errorf("dc1-c not in the configuration")
	})
	if !sawNonvoter && !bytes.Contains([]byte(c.Log("dc1-a")+c.Log("dc1-b")), []byte("adding server as nonvoter")) {
		t.Fatalf("dc1-c became a voter without joining as a nonvoter first")
	}
	c.AssertSameState()
}
