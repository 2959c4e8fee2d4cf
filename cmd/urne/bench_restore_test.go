package main

import (
	"encoding/hex"
	"log/slog"
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

// TestBenchRestore runs `urne bench restore` on a few thousand ballots, keeps its folder, and
// starts the restored node: it must hold every ballot at the state digest the bench reported.
func TestBenchRestore(t *testing.T) {
	const ballots = 3000
	dir := filepath.Join(t.TempDir(), "bench")
	stdout, stderr, code := runCLI(t, "bench", "restore", "--ballots", "3000", "--ballot-size", "256", "--dir", dir, "--keep", "-o", "json")
	if code != 0 {
		t.Fatalf("bench restore exited %d: %s", code, stderr)
	}
	var r restoreBenchReport
	decodeOne(t, stdout, &r)
	if r.Bench != "restore" || r.Ballots != ballots || r.RestoredBallots != ballots || !r.DigestVerified {
		t.Fatalf("report %+v: want %d ballots restored and the digest verified", r, ballots)
	}
	if r.BackupBytes < ballots*256 || r.RestoreSeconds <= 0 || r.RestoreMBPerSec <= 0 || r.DiskMBPerSec <= 0 || r.Ratio <= 0 {
		t.Fatalf("report %+v: want the archive's size, both rates and their ratio", r)
	}
	for _, gone := range []string{"source", "disk-dsync.probe"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is left in the folder (%v)", gone, err)
		}
	}
	c := startRestored(t, filepath.Join(dir, "restored"))
	ctx := harness.Context(t, time.Minute)
	ep := c.Endpoints()[0]
	harness.Poll(t, 30*time.Second, func() error {
		_, err := c.Counts(ctx, client.Stale(), client.OnEndpoint(ep))
		return err
	})
	counts, err := c.Counts(ctx, client.Stale(), client.OnEndpoint(ep))
	if err != nil {
		t.Fatal(err)
	}
	if counts.GetBallots() != ballots || counts.GetEmargements() != ballots || counts.GetVoters() != ballots {
		t.Fatalf("the restored node counts %v, want %d voters, émargements and ballots", counts, ballots)
	}
	d, err := c.StateDigest(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(d.GetDigest()); got != r.StateDigest || d.GetAppliedIndex() != r.Index {
		t.Fatalf("the restored node is at index %d digest %s; the bench reported %d %s", d.GetAppliedIndex(), got, r.Index, r.StateDigest)
	}
}

// startRestored runs the one node of a restored cluster folder in this process until the test
// ends, and returns an operator client of it.
func startRestored(t *testing.T, dir string) *client.Client {
	t.Helper()
	cfg, file, err := client.LoadClusterDir(dir, roleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if len(file.Nodes) != 1 {
		t.Fatalf("the restored cluster has %d nodes, want 1", len(file.Nodes))
	}
	ncfg, err := node.LoadConfig(cluster.NodeConfigPath(dir, file.Nodes[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := node.New(ncfg, node.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Shutdown() })
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestBenchRestoreRefusesBadInput(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		"--ballots 0":                  "positive number of ballots",
		"--ballots 10 --ballot-size 8": "below 16 bytes",
		"--ballots 10 --dir " + full:   "is not empty",
	} {
		_, stderr, code := runCLI(t, append([]string{"bench", "restore"}, strings.Fields(args)...)...)
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, %q; want an error saying %q", args, code, stderr, want)
		}
	}
}
