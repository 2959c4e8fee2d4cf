package drill

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/recovery"
)

// RestoreOptions configure `urne drill restore`.
type RestoreOptions struct {
	Options
	// From restores an existing archive instead of taking a fresh backup.
	From string
	// Secret opens the archive; default: the cluster folder's backup key.
	Secret *backup.Secret
	// Topology of the scratch cluster (default "3").
	Topology string
	// ScratchDir holds the scratch cluster (default: a new temporary folder); Keep leaves it.
	ScratchDir string
	Keep       bool
}

// RestoreFigures are the sizes and times of a restore drill.
type RestoreFigures struct {
	Archive        string   `json:"archive"`
	ArchiveBytes   int64    `json:"archive_bytes"`
	StateBytes     uint64   `json:"state_bytes"`
	Index          uint64   `json:"index"`
	Digest         string   `json:"digest"`
	Voters         uint64   `json:"voters"`
	Ballots        uint64   `json:"ballots"`
	BackupSeconds  float64  `json:"backup_s,omitempty"`
	RestoreSeconds float64  `json:"restore_s"`
	StartSeconds   float64  `json:"start_s"`
	ScratchDir     string   `json:"scratch_dir"`
	ScratchNodes   []string `json:"scratch_nodes"`
	Kept           bool     `json:"kept"`
}

// restoreWait bounds the start of the scratch cluster and its catching up with the archive.
const restoreWait = 90 * time.Second

// Restore takes a fresh backup while the load runs (or uses o.From), restores it into a
// scratch cluster on loopback, starts it, checks that every scratch node holds the archive's
// state at its index (digest and counts), reports sizes and times, and removes the scratch.
func (e *Env) Restore(ctx context.Context, o RestoreOptions) *Report {
	o.Options = o.Options.withDefaults()
	if o.Topology == "" {
		o.Topology = "3"
	}
	r := newReport(e, NameRestore, "")
	r.Restore = &RestoreFigures{}
	return e.run(ctx, r, o.Options, func(*load) error { return e.restoreBody(ctx, r, o) }, func(*workload.History) {})
}

func (e *Env) restoreBody(ctx context.Context, r *Report, o RestoreOptions) error {
	if e.Launch == nil {
		return ErrNoProcesses
	}
	secret, err := e.backupSecret(o.Secret)
	if err != nil {
		return err
	}
	scratch, cleanup, err := scratchDir(o)
	if err != nil {
		return err
	}
	f := r.Restore
	f.ScratchDir, f.Kept = scratch, o.Keep
	var procs recovery.Processes
	defer func() { e.teardown(r, procs, f.ScratchNodes, cleanup) }()
	archive, err := e.archiveFor(ctx, r, o, scratch, secret)
	if err != nil {
		return err
	}
	dir := filepath.Join(scratch, "cluster")
	res, err := e.restoreInto(r, archive, secret, dir, o.Topology)
	if err != nil {
		r.check("restorable", false, "the archive does not restore: %v", err)
		return nil
	}
	r.check("restorable", true, "%s restored into a new %s cluster in %.1fs", archive, o.Topology, f.RestoreSeconds)
	procs, err = e.Launch(dir)
	if err != nil {
		return err
	}
	return e.compareScratch(ctx, r, procs, dir, res)
}

func (e *Env) backupSecret(s *backup.Secret) (*backup.Secret, error) {
	if s != nil {
		return s, nil
	}
	return backup.LoadKeyFile(cluster.BackupKeyPath(e.Dir))
}

func scratchDir(o RestoreOptions) (string, func(), error) {
	if o.ScratchDir != "" {
		// The folder is removed at the end: it must hold nothing else.
		if entries, err := os.ReadDir(o.ScratchDir); err == nil && len(entries) > 0 {
			return "", nil, fmt.Errorf("scratch folder %s is not empty", o.ScratchDir)
		}
		if err := os.MkdirAll(o.ScratchDir, 0o700); err != nil {
			return "", nil, err
		}
		return o.ScratchDir, func() { _ = os.RemoveAll(o.ScratchDir) }, nil
	}
	dir, err := os.MkdirTemp("", "urne-drill-restore-")
	return dir, func() { _ = os.RemoveAll(dir) }, err
}

// archiveFor returns the archive to restore: o.From, or a fresh backup taken now.
func (e *Env) archiveFor(ctx context.Context, r *Report, o RestoreOptions, scratch string, secret *backup.Secret) (string, error) {
	if o.From != "" {
		r.Restore.Archive = o.From
		e.step(r, "restoring the existing archive %s", o.From)
		return o.From, nil
	}
	path := filepath.Join(scratch, "drill.urnebak")
	s, err := recovery.SaveBackup(ctx, e.Operator, path, secret, nil)
	if err != nil {
		return "", fmt.Errorf("fresh backup: %w", err)
	}
	r.Restore.Archive, r.Restore.BackupSeconds = path, s.Seconds
	e.step(r, "fresh backup at index %d: %d bytes in %.1fs", s.Header.Index, s.Bytes, s.Seconds)
	return path, nil
}

func (e *Env) restoreInto(r *Report, archive string, secret *backup.Secret, dir, topology string) (*recovery.RestoreResult, error) {
	res, err := recovery.RestoreNew(recovery.RestoreOptions{Archive: archive, Secret: secret, Out: dir,
		Topology: topology, Host: "127.0.0.1", Profile: node.ProfileLAN})
	if err != nil {
		return nil, err
	}
	f := r.Restore
	f.ArchiveBytes, f.StateBytes, f.Index = res.ArchiveBytes, res.Summary.Size, res.Header.Index
	f.Digest, f.Voters, f.Ballots = hex.EncodeToString(res.Summary.Digest), res.Summary.Voters, res.Summary.Ballots
	f.RestoreSeconds, f.ScratchNodes = res.Seconds, res.Nodes
	e.step(r, "restored index %d into a scratch %s cluster in %.1fs", res.Header.Index, topology, res.Seconds)
	return res, nil
}

// compareScratch starts the scratch nodes and waits until each holds the archive's state.
func (e *Env) compareScratch(ctx context.Context, r *Report, procs recovery.Processes, dir string, res *recovery.RestoreResult) error {
	start := time.Now()
	for _, id := range res.Nodes {
		if err := procs.Start(ctx, id); err != nil {
			return fmt.Errorf("scratch node %s: %w", id, err)
		}
	}
	cfg, file, err := client.LoadClusterDir(dir, "operator")
	if err != nil {
		return err
	}
	sc, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer sc.Close()
	var problems []string
	for _, n := range file.Nodes {
		if err := sameAsArchive(ctx, sc, n, res); err != nil {
			problems = append(problems, err.Error())
		}
	}
	r.Restore.StartSeconds = time.Since(start).Seconds()
	r.check("restored-state", len(problems) == 0, "%s", orOK(problems, fmt.Sprintf(
		"all %d scratch nodes hold the archive's state at index %d: digest %.8x, %d voters, %d ballots",
		len(file.Nodes), res.Header.Index, res.Summary.Digest, res.Summary.Voters, res.Summary.Ballots)))
	return nil
}

// sameAsArchive waits until node n applied the archive's index and compares its digest, then
// its counts.
func sameAsArchive(ctx context.Context, c *client.Client, n client.ClusterNode, res *recovery.RestoreResult) error {
	var last error
	err := pollUntil(ctx, restoreWait, func() error {
		d, err := c.StateDigest(ctx, n.GRPC)
		if err != nil {
			return err
		}
		if d.GetAppliedIndex() < res.Header.Index {
			return fmt.Errorf("%s applied %d of %d", n.ID, d.GetAppliedIndex(), res.Header.Index)
		}
		if d.GetAppliedIndex() != res.Header.Index || !bytes.Equal(d.GetDigest(), res.Summary.Digest) {
			last = fmt.Errorf("%s holds digest %.8x at index %d, the archive %.8x at index %d", n.ID, d.GetDigest(), d.GetAppliedIndex(), res.Summary.Digest, res.Header.Index)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if last != nil {
		return last
	}
	counts, err := c.Counts(ctx, client.Stale(), client.OnEndpoint(n.GRPC))
	if err != nil {
		return err
	}
	if counts.GetVoters() != res.Summary.Voters || counts.GetBallots() != res.Summary.Ballots || counts.GetEmargements() != res.Summary.Emargements {
		return fmt.Errorf("%s counts %d voters, %d ballots, %d émargements; the archive %d, %d, %d", n.ID,
			counts.GetVoters(), counts.GetBallots(), counts.GetEmargements(), res.Summary.Voters, res.Summary.Ballots, res.Summary.Emargements)
	}
	return nil
}

// teardown stops the scratch nodes and removes the scratch folder unless kept.
func (e *Env) teardown(r *Report, procs recovery.Processes, ids []string, cleanup func()) {
	var errs []error
	if procs != nil {
		for _, id := range ids {
			errs = append(errs, procs.Stop(id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		e.step(r, "stopping the scratch cluster: %v", err)
	}
	if r.Restore.Kept {
		e.step(r, "scratch cluster kept in %s", r.Restore.ScratchDir)
		return
	}
	cleanup()
	e.step(r, "scratch cluster stopped and removed")
}
