package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/recovery"
	"github.com/urne-vote/urne/test/harness"
)

// openElection creates the harness election with n voters v000001... and opens it.
func openElection(t *testing.T, c *harness.Cluster, n int) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Test election"); err != nil {
		t.Fatal(err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", n))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
}

// saveBackup streams a backup from c into a file and returns its path and the time the
// request was made.
func saveBackup(t *testing.T, c *harness.Cluster, secret *backup.Secret) (string, time.Time) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	asked := time.Now()
	stream, err := c.Client("operator").Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	info := stream.Info()
	path := filepath.Join(t.TempDir(), "state.urnebak")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := backup.Header{ElectionID: info.GetElectionId(), Index: info.GetIndex(), Term: info.GetTerm(),
		TakenAt: time.Unix(0, info.GetTakenAtUnixNano()), NodeID: info.GetNodeId()}
	if _, _, err := backup.Save(f, stream, secret, h); err != nil {
		t.Fatal(err)
	}
	return path, asked
}

// startFolder runs every node of a cluster folder in this process until the test ends.
func startFolder(t *testing.T, dir string) *client.Client {
	t.Helper()
	cfg, file, err := client.LoadClusterDir(dir, "operator")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range file.Nodes {
		ncfg, err := node.LoadConfig(cluster.NodeConfigPath(dir, n.ID))
		if err != nil {
			t.Fatal(err)
		}
		// The node records the restore, and drops this mark, at its first integrity check.
		if _, err := os.Stat(filepath.Join(ncfg.DataDir, "restored")); err != nil {
			t.Fatalf("restored node %s carries no restore mark: %v", n.ID, err)
		}
		nd, err := node.New(ncfg, node.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nd.Shutdown() })
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRestoreOfABackupTakenDuringVoting takes a backup while voters cast, restores it into a
// new cluster, and checks that the new cluster has the archive's digest and counts at its
// index, and every ballot acknowledged before the backup was asked for.
func TestRestoreOfABackupTakenDuringVoting(t *testing.T) {
	c := harness.New(t, "3")
	openElection(t, c, 3000)
	app := c.Client("app")
	ctx := harness.Context(t, 2*time.Minute)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	done := make(chan *workload.History)
	go func() {
		h, _ := workload.Run(loadCtx, app, workload.Config{Voters: 3000, Concurrency: 4, BallotSize: 64}, nil)
		done <- h
	}()
	waitBallots(t, app, 100)
	secret, err := backup.LoadKeyFile(cluster.BackupKeyPath(c.Dir))
	if err != nil {
		t.Fatal(err)
	}
	path, asked := saveBackup(t, c, secret)
	waitBallots(t, app, 300) // voting went on during and after the backup
	stopLoad()
	hist := <-done
	out := filepath.Join(t.TempDir(), "restored")
	res, err := recovery.RestoreNew(recovery.RestoreOptions{Archive: path, Secret: secret, Out: out,
		Topology: "3", Host: "127.0.0.1", Profile: node.ProfileLAN})
	if err != nil {
		t.Fatal(err)
	}
	restored := startFolder(t, out)
	checkRestored(t, restored, res)
	var before int
	box := fingerprints(t, restored)
	for _, op := range hist.Acked() {
		if op.End.Before(asked) {
			before++
			if !box[string(op.BallotFingerprint)] {
				t.Fatalf("ballot of %s, acknowledged before the backup was asked for, is not in the restored box", op.VoterID)
			}
		}
	}
	if before == 0 || res.Summary.Ballots >= uint64(len(hist.Acked())) {
		t.Fatalf("the backup did not fall during voting: %d acknowledged before it, %d in it, %d in all", before, res.Summary.Ballots, len(hist.Acked()))
	}
}

// checkRestored waits for every restored node to reach the archive's index and compares
// digests and counts with the archive's.
func checkRestored(t *testing.T, c *client.Client, res *recovery.RestoreResult) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	for _, ep := range c.Endpoints() {
		harness.Poll(t, 30*time.Second, func() error {
			d, err := c.StateDigest(ctx, ep)
			if err != nil {
				return err
			}
			if d.GetAppliedIndex() != res.Header.Index || !bytes.Equal(d.GetDigest(), res.Summary.Digest) {
				return errors.New("restored node " + d.GetNodeId() + " differs from the archive")
			}
			return nil
		})
		counts, err := c.Counts(ctx, client.Stale(), client.OnEndpoint(ep))
		if err != nil {
			t.Fatal(err)
		}
		if counts.Voters != res.Summary.Voters || counts.Ballots != res.Summary.Ballots || counts.Emargements != res.Summary.Emargements {
			t.Fatalf("restored counts %v, archive %+v", counts, res.Summary)
		}
	}
}

func waitBallots(t *testing.T, c *client.Client, n uint64) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	harness.Poll(t, time.Minute, func() error {
		counts, err := c.Counts(ctx)
		if err != nil {
			return err
		}
		if counts.Ballots < n {
			return errors.New("too few ballots yet")
		}
		return nil
	})
}

func fingerprints(t *testing.T, c *client.Client) map[string]bool {
	t.Helper()
	box := map[string]bool{}
	err := c.Fingerprints(harness.Context(t, time.Minute), func(fp []byte) error { box[string(fp)] = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// TestRestoreRefusals: a wrong key, a truncated file or a flipped byte leaves nothing behind;
// a running cluster and existing data are refused.
func TestRestoreRefusals(t *testing.T) {
	c := harness.New(t, "1")
	openElection(t, c, 50)
	secret, err := backup.LoadKeyFile(cluster.BackupKeyPath(c.Dir))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := saveBackup(t, c, secret)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := backup.GenerateKey("other-key")
	flipped := bytes.Clone(good)
	flipped[len(flipped)*2/3] ^= 0x01
	cases := []struct {
		name   string
		data   []byte
		secret *backup.Secret
		want   error
	}{
		{"wrong key", good, other, backup.ErrWrongKey},
		{"truncated", good[:len(good)-40], secret, backup.ErrTruncated},
		{"flipped byte", flipped, secret, backup.ErrDecrypt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			archive := filepath.Join(dir, "a.urnebak")
			if err := os.WriteFile(archive, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := recovery.RestoreNew(recovery.RestoreOptions{Archive: archive, Secret: tc.secret,
				Out: filepath.Join(dir, "out"), Topology: "1", Host: "127.0.0.1", Profile: node.ProfileLAN})
			if !errors.Is(err, tc.want) {
				t.Fatalf("restore: %v, want %v", err, tc.want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("the failed restore left files behind: %v", entries)
			}
		})
	}
	t.Run("running cluster", func(t *testing.T) {
		_, err := recovery.RestoreInto(recovery.RestoreOptions{Archive: path, Secret: secret, Cluster: c.Dir, Force: true})
		if !errors.Is(err, recovery.ErrRunning) {
			t.Fatalf("restore into a running cluster: %v", err)
		}
	})
	t.Run("existing data", func(t *testing.T) {
		c.StopAll()
		_, err := recovery.RestoreInto(recovery.RestoreOptions{Archive: path, Secret: secret, Cluster: c.Dir})
		if !errors.Is(err, recovery.ErrExists) {
			t.Fatalf("restore over existing data without force: %v", err)
		}
		res, err := recovery.RestoreInto(recovery.RestoreOptions{Archive: path, Secret: secret, Cluster: c.Dir, Force: true})
		if err != nil || len(res.MovedAside) != 1 {
			t.Fatalf("restore with force: %+v, %v", res, err)
		}
		checkRestored(t, startFolder(t, c.Dir), res)
	})
}
