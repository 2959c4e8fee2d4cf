package test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// TestNoPlaintextUnderDataDirs plants canary strings in voter data and ballots, forces
// snapshots so every store has written, then scans every byte under every data directory.
func TestNoPlaintextUnderDataDirs(t *testing.T) {
	c := harness.New(t, "3")
	ctx := harness.Context(t, time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "CANARY-ELECTION-NAME"); err != nil {
		t.Fatal(err)
	}
	voters := []*urnepb.Voter{
		{VoterId: "CANARY-VOTER-ID-1", Name: "CANARY-NAME-Dupont", Email: "canary-mail@example.org"},
		{VoterId: "CANARY-VOTER-ID-2", Name: "CANARY-NAME-Durand", Email: "canary-mail2@example.org"},
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(voters)); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
	app := c.Client("app")
	if _, err := app.Cast(ctx, "CANARY-VOTER-ID-1", []byte("CANARY-BALLOT-CONTENT")); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
	for _, id := range c.Running() {
		if err := c.Node(id).Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", id, err)
		}
	}
	c.StopAll()
	canaries := []string{"CANARY-ELECTION-NAME", "CANARY-VOTER-ID", "CANARY-NAME", "canary-mail", "CANARY-BALLOT"}
	for _, n := range c.File.Nodes {
		dir := c.DataDir(n.ID)
		if len(harness.ScanFiles(t, filepath.Join(dir, "snapshots"), nil)) == 0 {
			t.Fatalf("%s wrote no snapshot: the scan would prove nothing", n.ID)
		}
		for _, canary := range canaries {
			if hits := harness.ScanFiles(t, dir, []byte(canary)); len(hits) > 0 {
				t.Errorf("plaintext %q found in %v", canary, hits)
			}
		}
	}
}

// hashTree returns a digest of every file under dir, to prove a refused start changed nothing.
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// stoppedCluster runs a small election, then stops every node, leaving data on disk.
func stoppedCluster(t *testing.T) *harness.Cluster {
	c := votedCluster(t)
	c.StopAll()
	return c
}

// votedCluster runs a small election in which v000001 has voted, every node converged.
func votedCluster(t *testing.T) *harness.Cluster {
	c := harness.New(t, "3")
	openElection(t, c, 5)
	if _, err := c.Client("app").Cast(harness.Context(t, 30*time.Second), "v000001", ballotOf("v000001")); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
	return c
}

func TestWrongKeyRefusesToStartAndTouchesNothing(t *testing.T) {
	c := stoppedCluster(t)
	cfg := c.Config("dc1-a")
	before := hashTree(t, cfg.DataDir)

	other, err := keyring.GenerateKEK("kek-intruder-1")
	if err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(t.TempDir(), "kek")
	if err := keyring.WriteKEKFile(wrongFile, other); err != nil {
		t.Fatal(err)
	}
	sameID, err := keyring.GenerateKEK("kek-dc1-a-1")
	if err != nil {
		t.Fatal(err)
	}
	sameIDFile := filepath.Join(t.TempDir(), "kek")
	if err := keyring.WriteKEKFile(sameIDFile, sameID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		kek  node.KEKSource
		want string
	}{
		{"another key", node.KEKSource{File: wrongFile}, "kek-intruder-1"},
		{"same id, wrong bytes", node.KEKSource{File: sameIDFile}, "does not open keyring"},
		{"missing file", node.KEKSource{File: filepath.Join(t.TempDir(), "nope")}, "nope"},
		{"empty environment", node.KEKSource{Env: "URNE_TEST_EMPTY_KEK"}, "URNE_TEST_EMPTY_KEK"},
	}
	for _, tc := range cases {
		cfg := c.Config("dc1-a")
		cfg.KEK = tc.kek
		err := c.TryStartConfig(cfg)
		if err == nil {
			t.Fatalf("%s: node started", tc.name)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %q", tc.name, err, tc.want)
		}
	}
	if after := hashTree(t, cfg.DataDir); after != before {
		t.Fatalf("a refused start changed the data directory")
	}
	// The right key still opens everything.
	c.Start("dc1-a")
}

func TestCorruptDatabaseRefusesToStart(t *testing.T) {
	c := stoppedCluster(t)
	for _, file := range []string{"fsm.db", "raft.db"} {
		t.Run(file, func(t *testing.T) {
			cfg := c.Config("dc1-b")
			path := filepath.Join(cfg.DataDir, file)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o600)
			bad := append([]byte(nil), orig...)
			// Overwrite the first meta page's body: bbolt's checksum or check must fail.
			for i := 16; i < 64 && i < len(bad); i++ {
				bad[i] ^= 0xff
			}
			for i := 4096 + 16; i < 4096+64 && i < len(bad); i++ {
				bad[i] ^= 0xff
			}
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			err = c.TryStartConfig(cfg)
			if err == nil {
				t.Fatalf("node started on a corrupt %s", file)
			}
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name %s", err, file)
			}
		})
	}
}

func TestForeignElectionCertificateIsRefused(t *testing.T) {
	c := harness.New(t, "3")
	// A whole other election, with its own CA, whose node is pointed at this cluster.
	otherDir := filepath.Join(t.TempDir(), "other")
	if _, err := cluster.Init(cluster.Options{ElectionID: "other-election", Topology: "1+1", Out: otherDir,
		Host: harness.LoopbackHost(), Profile: node.ProfileLAN}); err != nil {
		t.Fatal(err)
	}
	cfg, err := node.LoadConfig(cluster.NodeConfigPath(otherDir, "dc2-a"))
	if err != nil {
		t.Fatal(err)
	}
	// The intruder believes it belongs to this cluster: it bootstraps with this cluster's
	// voters and itself, so it campaigns and dials their raft ports with its certificate.
	intruderPeer := cfg.Bootstrap[1]
	cfg.Bootstrap = nil
	for _, n := range c.File.Nodes {
		cfg.Bootstrap = append(cfg.Bootstrap, node.Peer{ID: n.ID, Datacenter: n.Datacenter, Role: node.Role(n.Role), Raft: n.Raft, GRPC: n.GRPC, Gossip: n.Gossip})
	}
	cfg.Bootstrap = append(cfg.Bootstrap, intruderPeer)
	cfg.Join = []string{c.File.Nodes[0].Gossip}
	if err := c.TryStartConfig(cfg); err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, 10*time.Second, func() error {
		all := c.Log("dc1-a") + c.Log("dc1-b") + c.Log("dc1-c")
		if strings.Contains(all, "other-election") || strings.Contains(all, "another election") || strings.Contains(all, "not signed by the CA") {
			return nil
		}
		return fmt.Errorf("no log line explains the refusal")
	})
	// Gossip: the intruder (dc2-a) never appears among the cluster's members.
	c.Stop("dc2-a")
	leader := c.Node(c.WaitLeader())
	for _, m := range leader.GossipMembers() {
		if m == "dc2-a" {
			t.Fatalf("gossip admitted a node of another election")
		}
	}
	// gRPC: a client certificate of the other election is refused.
	cfgOther, _, err := client.LoadClusterDir(otherDir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	cfgOther.Endpoints = c.File.Endpoints()
	cfgOther.MaxAttempts = 1
	cl, err := client.New(cfgOther)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Counts(harness.Context(t, 10*time.Second)); err == nil {
		t.Fatalf("a client of another election was served")
	} else if errors.Is(err, client.ErrNoElection) {
		t.Fatalf("request reached the state machine: %v", err)
	}
}

// A node's snapshots refer to its state database instead of copying it. A database put back
// from before the latest snapshot cannot be rebuilt from that snapshot, so the node refuses to
// start and says what to do; with its own database back, it starts.
func TestStateDatabaseBehindItsSnapshotRefusesToStart(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 5)
	c.WaitConverged()
	const id = "dc1-b"
	path := filepath.Join(c.DataDir(id), "fsm.db")
	older := filepath.Join(t.TempDir(), "fsm.db")
	c.Stop(id)
	copyFile(t, path, older)
	c.Start(id)
	if _, err := c.Client("app").Cast(harness.Context(t, 30*time.Second), "v000001", ballotOf("v000001")); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged()
	if err := c.Node(id).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot on %s: %v", id, err)
	}
	c.Stop(id)
	own := filepath.Join(t.TempDir(), "fsm.db")
	copyFile(t, path, own)
	copyFile(t, older, path)
	err := c.TryStartConfig(c.Config(id))
	if err == nil || !strings.Contains(err.Error(), "behind this node's latest snapshot") || !strings.Contains(err.Error(), "add it back") {
		t.Fatalf("start on a state database older than the snapshot: %v", err)
	}
	copyFile(t, own, path)
	c.Start(id)
	c.WaitConverged()
}

// Raft's offline recovery (promote-dc) restores the newest snapshot before it replays the log.
// That snapshot is a reference the state database holds, so the database is kept as it is,
// not rebuilt over itself, and the node leads alone with every ballot.
func TestRecoverAloneKeepsTheStateDatabase(t *testing.T) {
	c := votedCluster(t)
	const id = "dc1-b"
	if err := c.Node(id).Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot on %s: %v", id, err)
	}
	c.StopAll()
	path := filepath.Join(c.DataDir(id), "fsm.db")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.RecoverAlone(c.Config(id), nil); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("recovery rebuilt the state database from a copy of itself")
	}
	c.Start(id)
	got, err := c.Client("app").HasVoted(harness.Context(t, 30*time.Second), "v000001", client.OnEndpoint(c.GRPC(id)))
	if err != nil || !got.Voted {
		t.Fatalf("after the recovery %s says v000001 voted: %v, %v", id, got.GetVoted(), err)
	}
}
