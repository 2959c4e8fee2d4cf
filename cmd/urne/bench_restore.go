package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/internal/teststate"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/recovery"
)

// Defaults of `urne bench restore`.
const (
	defaultRestoreBallots = 1_000_000
	// restoreBatchesPerApply CAST_BATCH entries go into one transaction of the state machine
	// while the election is built, as raft hands a busy node several entries at once.
	restoreBatchesPerApply = 16
	restoreBenchElection   = "bench-restore"
	// diskBlock is the size of each synced write of the disk measurement.
	diskBlock = 1 << 20
)

// restoreBenchOptions are the inputs of `urne bench restore`.
type restoreBenchOptions struct {
	ballots, ballotSize int
	dir                 string
	keep                bool
}

// restoreBenchReport is the JSON of `urne bench restore`.
type restoreBenchReport struct {
	Bench           string  `json:"bench"`
	Ballots         int     `json:"ballots"`
	BallotSize      int     `json:"ballot_size"`
	BackupBytes     int64   `json:"backup_bytes"`
	StateBytes      uint64  `json:"state_bytes"`
	Index           uint64  `json:"index"`
	BuildSeconds    float64 `json:"build_seconds"`
	RestoreSeconds  float64 `json:"restore_seconds"`
	RestoreMBPerSec float64 `json:"restore_mb_per_second"`
	DiskSeconds     float64 `json:"disk_dsync_seconds"`
	DiskMBPerSec    float64 `json:"disk_dsync_mb_per_second"`
	Ratio           float64 `json:"ratio"`
	RestoredBallots uint64  `json:"restored_ballots"`
	DigestVerified  bool    `json:"digest_verified"`
	StateDigest     string  `json:"state_digest"`
	Dir             string  `json:"dir,omitempty"`
	RestoredCluster string  `json:"restored_cluster,omitempty"`

	restoredDigest []byte
}

func (a *app) benchRestoreCommand() *cobra.Command {
	o := restoreBenchOptions{}
	cmd := &cobra.Command{
		Use:   "restore [--ballots N]",
		Short: "Restore a backup of an election with many ballots; report MB/s against the disk's synced write rate",
		Long: "Build the state of an open election of --ballots voters who each cast one random ballot,\n" +
			"by applying real CAST_BATCH commands to a state machine (no cluster: this is the fast\n" +
			"part), seal its snapshot into a backup archive with a new backup key, then time\n" +
			"`urne backup restore --out NEWDIR --topology 1` on it (the archive checked whole, the\n" +
			"node's snapshot written, sealed and fsynced) and check the restored state's digest and\n" +
			"ballot count. Then write as many bytes to the same folder in 1 MiB blocks, each synced\n" +
			"(O_DSYNC), and report restore MB/s over that disk rate. MB is 10^6 bytes of archive.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.runRestoreBench(cmd.Context(), o)
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) { printRestoreBench(w, r) })
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.ballots, "ballots", defaultRestoreBallots, "ballots (and voters) in the election backed up")
	fl.IntVar(&o.ballotSize, "ballot-size", defaultBenchBallotSize, "bytes per random ballot")
	fl.StringVar(&o.dir, "dir", "", "empty folder for the state, the archive and the restored cluster (default: a temporary one); the disk is measured there")
	fl.BoolVar(&o.keep, "keep", false, "leave the folder (the archive, its key and the restored cluster) instead of removing it")
	return cmd
}

// runRestoreBench builds, backs up, restores and measures; the folder is removed unless o.keep.
func (a *app) runRestoreBench(ctx context.Context, o restoreBenchOptions) (r *restoreBenchReport, err error) {
	if o.ballots <= 0 {
		return nil, fmt.Errorf("--ballots %d: give a positive number of ballots", o.ballots)
	}
	if o.ballotSize < workload.MinBallotSize {
		return nil, fmt.Errorf("--ballot-size %d is below %d bytes: ballots would not be unique", o.ballotSize, workload.MinBallotSize)
	}
	dir, err := benchFolder(o.dir)
	if err != nil {
		return nil, err
	}
	if !o.keep {
		defer func() {
			if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
				err = rmErr
			}
		}()
	}
	r = &restoreBenchReport{Bench: "restore", Ballots: o.ballots, BallotSize: o.ballotSize}
	if o.keep {
		r.Dir = dir
	}
	archive, secret, digest, err := a.buildBackup(ctx, o, dir, r)
	if err != nil {
		return nil, err
	}
	if err := a.timeRestore(archive, secret, filepath.Join(dir, "restored"), r); err != nil {
		return nil, err
	}
	if r.DigestVerified = bytes.Equal(digest, r.restoredDigest); !r.DigestVerified {
		return nil, fmt.Errorf("the restored state's digest %s differs from the backed up state's %x", r.StateDigest, digest)
	}
	if r.RestoredBallots != uint64(o.ballots) {
		return nil, fmt.Errorf("the restored state holds %d ballots, the election %d", r.RestoredBallots, o.ballots)
	}
	if o.keep {
		r.RestoredCluster = filepath.Join(dir, "restored")
	}
	if err := a.measureDisk(ctx, dir, r); err != nil {
		return nil, err
	}
	return r, nil
}

// benchFolder returns dir, created and checked empty, or a new temporary folder.
func benchFolder(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "urne-bench-restore-")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("--dir %s is not empty: give an empty or new folder", dir)
	}
	return filepath.Abs(dir)
}

// buildBackup builds the election's state and seals its snapshot into dir/state.urnebak. It
// returns the archive's path, its key and the state's digest.
func (a *app) buildBackup(ctx context.Context, o restoreBenchOptions, dir string, r *restoreBenchReport) (string, *backup.Secret, []byte, error) {
	start := time.Now()
	b, err := teststate.NewBuilder(filepath.Join(dir, "source"))
	if err != nil {
		return "", nil, nil, err
	}
	defer b.Close()
	var voters, cast atomic.Int64
	var castStart atomic.Int64
	stop := a.ticker(500*time.Millisecond, func() {
		if voters.Load() < int64(o.ballots) {
			a.progress("building the election: %d of %d voters imported", voters.Load(), o.ballots)
			return
		}
		castStart.CompareAndSwap(0, time.Now().UnixNano())
		el := time.Since(time.Unix(0, castStart.Load())).Seconds()
		a.progress("building the election: %d of %d ballots cast (%.0f/s, %d per transaction), %.0fs", cast.Load(), o.ballots,
			float64(cast.Load())/max(el, 1e-3), restoreBatchesPerApply*fsm.MaxCastsPerBatch, time.Since(start).Seconds())
	})
	err = b.Open(ctx, restoreBenchElection, "Restore benchmark", o.ballots, func(n int) { voters.Store(int64(n)) })
	if err == nil {
		err = b.CastBatches(ctx, 0, o.ballots, o.ballotSize, restoreBatchesPerApply, func(n int) { cast.Store(int64(n)) })
	}
	stop()
	if err != nil {
		return "", nil, nil, fmt.Errorf("building the election's state: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", nil, nil, err
	}
	index, digest, err := b.FSM.Digest()
	if err != nil {
		return "", nil, nil, err
	}
	secret, err := backup.GenerateKey("bench-restore")
	if err != nil {
		return "", nil, nil, err
	}
	// The key is kept beside the archive so that a kept folder can be restored again.
	if err := backup.WriteKeyFile(filepath.Join(dir, "backup.key"), secret); err != nil {
		return "", nil, nil, err
	}
	a.progress("sealing the backup archive")
	path := filepath.Join(dir, "state.urnebak")
	h := backup.Header{ElectionID: restoreBenchElection, Index: index, Term: 1, TakenAt: time.Now().UTC(), NodeID: "bench", NodeVersion: node.Version}
	sum, size, err := writeBackupOf(b, path, secret, h)
	a.progressDone()
	if err != nil {
		return "", nil, nil, err
	}
	r.BackupBytes, r.StateBytes, r.Index, r.BuildSeconds = size, sum.Size, index, time.Since(start).Seconds()
	// The archive lives on; the source state machine's file is no longer needed.
	if err := b.Close(); err != nil {
		return "", nil, nil, err
	}
	return path, secret, digest, os.RemoveAll(filepath.Join(dir, "source"))
}

// writeBackupOf seals the builder's snapshot into a new archive at path as `urne backup`
// does: through backup.Save into a buffered file, synced before it counts.
func writeBackupOf(b *teststate.Builder, path string, secret *backup.Secret, h backup.Header) (backup.Summary, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return backup.Summary{}, 0, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := b.Snapshot(pw)
		pw.CloseWithError(err)
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	_, sum, err := backup.Save(bw, pr, secret, h)
	pr.CloseWithError(errors.New("the archive writer stopped"))
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return backup.Summary{}, 0, fmt.Errorf("writing the backup archive: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		return backup.Summary{}, 0, err
	}
	return sum, info.Size(), f.Close()
}

// timeRestore runs the restore of `urne backup restore --out DIR --topology 1` and times it.
func (a *app) timeRestore(archive string, secret *backup.Secret, out string, r *restoreBenchReport) error {
	o := recovery.RestoreOptions{Archive: archive, Secret: secret, Out: out, Topology: "1", Host: defaultHost, Profile: node.ProfileLAN}
	last := time.Now()
	o.Progress = func(read, total int64) { // called on every read: drawn at most 5 times a second
		if time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			a.progress("restoring: %s of %s read", humanBytes(uint64(read)), humanBytes(uint64(total)))
		}
	}
	start := time.Now()
	res, err := recovery.RestoreNew(o)
	elapsed := time.Since(start)
	a.progressDone()
	if err != nil {
		return fmt.Errorf("restoring the archive: %w", err)
	}
	r.RestoreSeconds = elapsed.Seconds()
	r.RestoreMBPerSec = mbPerSecond(r.BackupBytes, elapsed)
	r.RestoredBallots = res.Summary.Ballots
	r.StateDigest, r.restoredDigest = hex.EncodeToString(res.Summary.Digest), res.Summary.Digest
	return nil
}

func mbPerSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// measureDisk writes as many bytes as the archive holds to a file in dir, 1 MiB per write,
// each write synced to the disk before the next (O_DSYNC), and removes the file.
func (a *app) measureDisk(ctx context.Context, dir string, r *restoreBenchReport) error {
	path := filepath.Join(dir, "disk-dsync.probe")
	f, err := openDsync(path)
	if err != nil {
		return fmt.Errorf("measuring the disk: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	block := make([]byte, diskBlock)
	for i := range block {
		block[i] = byte(i * 131) // not zeros: nothing below may skip them
	}
	var written atomic.Int64
	stop := a.ticker(500*time.Millisecond, func() {
		a.progress("measuring the disk: %s of %s written, each MiB synced", humanBytes(uint64(written.Load())), humanBytes(uint64(r.BackupBytes)))
	})
	start := time.Now()
	for written.Load() < r.BackupBytes && ctx.Err() == nil {
		n := min(int64(len(block)), r.BackupBytes-written.Load())
		if err := writeSynced(f, block[:n]); err != nil {
			stop()
			return fmt.Errorf("measuring the disk: %w", err)
		}
		written.Add(n)
	}
	elapsed := time.Since(start)
	stop()
	if err := ctx.Err(); err != nil {
		return err
	}
	r.DiskSeconds, r.DiskMBPerSec = elapsed.Seconds(), mbPerSecond(written.Load(), elapsed)
	if r.DiskMBPerSec > 0 {
		r.Ratio = r.RestoreMBPerSec / r.DiskMBPerSec
	}
	return f.Close()
}

func printRestoreBench(w io.Writer, r *restoreBenchReport) {
	fprintf(w, "election of %d ballots of %d bytes built in %.1fs: state %s at index %d, archive %s\n",
		r.Ballots, r.BallotSize, r.BuildSeconds, humanBytes(r.StateBytes), r.Index, humanBytes(uint64(r.BackupBytes)))
	fprintf(w, "restore: %.2fs, %.1f MB/s of archive (%d ballots restored, state digest %.16s... verified)\n",
		r.RestoreSeconds, r.RestoreMBPerSec, r.RestoredBallots, r.StateDigest)
	fprintf(w, "disk, 1 MiB synced writes: %.2fs, %.1f MB/s\n", r.DiskSeconds, r.DiskMBPerSec)
	fprintf(w, "restore / disk: %.2f\n", r.Ratio)
	if r.Dir != "" {
		fprintf(w, "kept %s (archive state.urnebak; restored cluster in restored/)\n", r.Dir)
	}
}
