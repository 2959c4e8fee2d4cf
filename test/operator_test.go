package test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
)

func TestRotateKeyOnline(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 10)
	ctx := harness.Context(t, time.Minute)
	app := c.Client("app")
	if _, err := app.Cast(ctx, "v000001", ballotOf("v000001")); err != nil {
		t.Fatal(err)
	}
	op := c.Client("operator")
	rot, err := op.RotateKey(ctx, c.GRPC("dc1-b"))
	if err != nil {
		t.Fatal(err)
	}
	if rot.PrimaryKeyId != 2 || len(rot.KeyIds) != 2 {
		t.Fatalf("after rotation: %v, want primary 2 of keys [1 2]", rot)
	}
	// Writes continue; the node uses the new key and still reads what the old one sealed.
	if _, err := app.Cast(ctx, "v000002", ballotOf("v000002")); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
	c.Stop("dc1-b")
	c.Start("dc1-b")
	info, err := op.Node(ctx, c.GRPC("dc1-b"))
	if err != nil {
		t.Fatal(err)
	}
	if info.PrimaryKeyId != 2 {
		t.Fatalf("primary key after restart = %d, want 2", info.PrimaryKeyId)
	}
	c.AssertSameState()
	got, err := app.HasVoted(ctx, "v000001", client.OnEndpoint(c.GRPC("dc1-b")), client.Stale())
	if err != nil || !got.Voted {
		t.Fatalf("data sealed before rotation unreadable after restart: %v %v", got, err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 3)
	ctx := harness.Context(t, 30*time.Second)
	if _, err := c.Client("app").Cast(ctx, "v000001", ballotOf("v000001")); err != nil {
		t.Fatal(err)
	}
	leader := c.WaitLeader()
	n, _ := c.File.Node(leader)
	want := []string{
		"urne_raft_leader 1", "urne_raft_term", "urne_raft_commit_index", "urne_fsm_applied_index",
		"urne_raft_commit_duration_seconds_bucket", "urne_fsm_apply_batch_duration_seconds_bucket",
		`urne_casts_total{result="accepted"} 1`, "urne_raft_follower_lag_entries",
		`urne_fsm_commands_total{code="RESPONSE_OK",type="COMMAND_CAST"} 1`,
	}
	harness.Poll(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + n.Metrics + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				return fmt.Errorf("metrics lack %q", w)
			}
		}
		return nil
	})
}

func TestHealthAndReflectionAnswer(t *testing.T) {
	c := harness.New(t, "3")
	cfg, _, err := client.LoadClusterDir(c.Dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.GRPC("dc1-a"), grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := harness.Context(t, 10*time.Second)
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"urne.v1.Election", "urne.v1.Operator"} {
		if !slices.Contains(names, want) {
			t.Fatalf("reflection lists %v, not %s", names, want)
		}
	}
}

// TestGossipDeathRemovesNoServer stops a voter long enough for gossip to declare it dead and
// checks that it stays in the raft configuration: only an operator (or autopilot's opt-in
// cleanup) removes servers.
func TestGossipDeathRemovesNoServer(t *testing.T) {
	c := harness.New(t, "3")
	c.Stop("dc1-c")
	c.WaitLeader()
	harness.Poll(t, 30*time.Second, func() error {
		st := gossipStatuses(t, c)
		if !slices.Contains(st, "dc1-c=dead") && !slices.Contains(st, "dc1-c=left") {
			return fmt.Errorf("gossip still sees dc1-c: %v", st)
		}
		return nil
	})
	peers, err := c.Client("operator").Peers(harness.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range peers.Peers {
		if p.Id == "dc1-c" {
			found = p.Suffrage == "voter"
		}
	}
	if !found {
		t.Fatalf("dc1-c left the configuration after a gossip death: %v", peers.Peers)
	}
}

func gossipStatuses(t *testing.T, c *harness.Cluster) []string {
	peers, err := c.Client("operator").Peers(harness.Context(t, 10*time.Second))
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range peers.Peers {
		out = append(out, p.Id+"="+p.GossipStatus)
	}
	return out
}
