package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
)

// Regression tests for the failures the scenarios found, each reduced to its cause.

// startConfigured prepares a cluster, applies configure to every node's file and starts it.
func startConfigured(t *testing.T, topology string, configure func(*node.Config)) *harness.Cluster {
	t.Helper()
	c := harness.Prepare(t, topology)
	for _, id := range c.IDs() {
		cfg := c.Config(id)
		configure(&cfg)
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cluster.NodeConfigPath(c.Dir, id), b, 0o600); err != nil {
			t.Fatal(err)
		}
		c.Start(id)
	}
	c.WaitLeader()
	return c
}

func openSmallElection(t *testing.T, c *harness.Cluster, voters int) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Regression"); err != nil {
		t.Fatal(err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", voters))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
}

// A follower that installed a snapshot ending on raft entries the state machine never sees
// (a new leader's barrier) must serve linearizable reads without waiting for a new write.
// It used to look those entries up in its log, where the snapshot had removed them, and
// wait forever on an idle cluster.
func TestFollowerReadsAfterInstallingSnapshotOnIdleCluster(t *testing.T) {
	c := startConfigured(t, "3", func(cfg *node.Config) { cfg.TrailingLogs = 8 })
	openSmallElection(t, c, 100)
	app := c.Client("app")
	ctx := harness.Context(t, 3*time.Minute)
	leader := c.WaitLeader()
	var behind, next string
	for _, id := range c.Running() {
		if id != leader {
			if behind == "" {
				behind = id
			} else {
				next = id
			}
		}
	}
	c.Stop(behind)
	for i := 1; i <= 40; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(ctx, v, []byte("ballot of "+v)); err != nil {
			t.Fatalf("cast %s: %v", v, err)
		}
	}
	// The new leader's first entries (no-op, barrier) never reach the state machine.
	if _, err := c.Client("operator").TransferLeadership(ctx, next); err != nil {
		t.Fatalf("transfer to %s: %v", next, err)
	}
	c.WaitNewLeader(leader, 30*time.Second)
	harness.Poll(t, 30*time.Second, func() error { return c.Node(next).Raft().Snapshot().Error() })
	c.Start(behind)
	harness.Poll(t, 2*time.Minute, func() error {
		if !strings.Contains(c.Log(behind), "state restored from snapshot") {
			return fmt.Errorf("%s has not installed the snapshot; %s logged: %s", behind, next, linesWith(c.Log(next), "snapshot", 6))
		}
		return nil
	})
	// The leader's snapshot is a reference: what it sent was streamed from its database.
	if !strings.Contains(c.Log(next), "streaming a full copy of the state database") {
		t.Fatalf("%s sent a snapshot without streaming its state database", next)
	}
	// What the follower received is a full copy, and it is sealed at rest like the rest.
	states, _ := filepath.Glob(filepath.Join(c.DataDir(behind), "snapshots", "snapshots", "*", "state.bin"))
	largest := int64(0)
	for _, path := range states {
		if info, err := os.Stat(path); err == nil {
			largest = max(largest, info.Size())
		}
	}
	if largest < 4096 {
		t.Fatalf("%s holds no full snapshot (largest %d bytes of %d files)", behind, largest, len(states))
	}
	if hits := harness.ScanFiles(t, filepath.Join(c.DataDir(behind), "snapshots"), []byte("ballot of v0000")); len(hits) > 0 {
		t.Fatalf("plaintext ballots in the snapshot %s received: %v", behind, hits)
	}
	readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := app.HasVoted(readCtx, "v000040", client.OnEndpoint(c.GRPC(behind)))
	if err != nil {
		t.Fatalf("linearizable read on %s after the snapshot: %v", behind, err)
	}
	if !got.Voted {
		t.Fatalf("%s says v000040 has not voted", behind)
	}
}

// linesWith returns the last n lines of log that contain word, for a failure message.
func linesWith(log, word string, n int) string {
	var hits []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, word) {
			hits = append(hits, l)
		}
	}
	return strings.Join(hits[max(0, len(hits)-n):], "\n")
}
