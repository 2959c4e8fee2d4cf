package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/recovery"
)

// restoreFlags are the inputs of `urne backup restore`.
type restoreFlags struct {
	out, clusterDir string
	force           bool
	topology, host  string
	basePort        int
	profile         string
	sf              *secretFlags
}

func (a *app) backupRestoreCommand() *cobra.Command {
	f := &restoreFlags{}
	cmd := &cobra.Command{
		Use:   "restore FILE (--out NEWDIR | --cluster DIR [--force])",
		Short: "Build a cluster whose nodes start from an archive's state",
		Long: "With --out, write a new cluster folder (as `urne cluster init` would: new CA, certificates\n" +
			"and keys, for the archive's election) whose nodes start at the archive's index; start it with\n" +
			"`urne dev up --dir NEWDIR` or copy its node folders to their hosts. With --cluster, replace\n" +
			"the data of every node of an existing folder, keeping its keys; a running node is refused,\n" +
			"and so is existing data, unless --force (local nodes are then stopped, old data is moved\n" +
			"aside as data.before-restore-<time>). The archive is checked whole before anything is\n" +
			"put in place: a wrong key, a truncated file or a flipped byte leaves no trace.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.restore(cmd.Context(), args[0], f)
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) { printRestore(w, res) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "new cluster folder to create")
	fl.StringVar(&f.clusterDir, "cluster", "", "existing cluster folder whose nodes' data is replaced")
	fl.BoolVar(&f.force, "force", false, "with --cluster: stop local nodes and move existing data aside")
	fl.StringVar(&f.topology, "topology", defaultTopology, "with --out: layout of the new cluster")
	fl.StringVar(&f.host, "host", defaultHost, "with --out: address the new nodes bind to")
	fl.IntVar(&f.basePort, "base-port", 0, "with --out: first port; 0 picks free ports")
	fl.StringVar(&f.profile, "profile", string(node.ProfileLAN), "with --out: raft timeouts, lan or wan")
	cmd.MarkFlagsMutuallyExclusive("out", "cluster")
	cmd.MarkFlagsOneRequired("out", "cluster")
	f.sf = addSecretFlags(cmd)
	return cmd
}

func (a *app) restore(ctx context.Context, archive string, f *restoreFlags) (*recovery.RestoreResult, error) {
	secret, err := f.sf.secret(f.clusterDir)
	if err != nil {
		return nil, err
	}
	o := recovery.RestoreOptions{Archive: archive, Secret: secret, Out: f.out, Cluster: f.clusterDir, Force: f.force,
		Topology: f.topology, Host: f.host, BasePort: f.basePort, Profile: node.Profile(f.profile)}
	last := time.Now()
	o.Progress = func(read, total int64) {
		if time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			a.progress("restoring: %s of %s read", humanBytes(uint64(read)), humanBytes(uint64(total)))
		}
	}
	defer a.progressDone()
	if f.out != "" {
		return recovery.RestoreNew(o)
	}
	if err := a.stopForRestore(ctx, f.clusterDir, f.force); err != nil {
		return nil, err
	}
	return recovery.RestoreInto(o)
}

// stopForRestore refuses a running cluster, or with force stops its local node processes.
// Nodes that still answer afterwards run elsewhere: they must be stopped by their operator.
func (a *app) stopForRestore(ctx context.Context, dir string, force bool) error {
	d, err := openDevCluster(dir, "")
	if err != nil {
		return err
	}
	running := d.answering(ctx)
	if len(running) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("%w: %s answer; stop the cluster or give --force to stop its local nodes", recovery.ErrRunning, strings.Join(running, ", "))
	}
	if _, err := d.stopAll(stopGrace); err != nil {
		return err
	}
	if still := d.answering(ctx); len(still) > 0 {
		return fmt.Errorf("%w: %s still answer after stopping the local processes: they run elsewhere; stop them there", recovery.ErrRunning, strings.Join(still, ", "))
	}
	a.say("stopped the running nodes of %s", dir)
	return nil
}

// answering lists the nodes that run: a live local process, or an answer to Node.
func (d *devCluster) answering(ctx context.Context) []string {
	var out []string
	c, err := d.operatorClient()
	var answers []nodeAnswer
	if err == nil {
		defer closeClient(c)
		answers = askNodes(ctx, c, d.targets(d.ids()))
	}
	for i, id := range d.ids() {
		if d.pid(id) != 0 || (i < len(answers) && answers[i].err == nil) {
			out = append(out, id)
		}
	}
	return out
}

func printRestore(w io.Writer, r *recovery.RestoreResult) {
	h := r.Header
	fprintf(w, "restored election %s at index %d into %s (%d nodes) in %.1fs\n", h.ElectionID, h.Index, r.Dir, len(r.Nodes), r.Seconds)
	fprintf(w, "  from %s (%s), taken %s on %s\n", r.Archive, humanBytes(uint64(r.ArchiveBytes)), h.TakenAt.UTC().Format(time.RFC3339), h.NodeID)
	fprintf(w, "  %d voters, %d émargements, %d ballots; state digest %s\n", r.Summary.Voters, r.Summary.Emargements, r.Summary.Ballots, hex.EncodeToString(r.Summary.Digest))
	for id, dir := range r.MovedAside {
		fprintf(w, "  previous data of %s moved to %s\n", id, dir)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, client.ClusterFileName)); err == nil {
		fprintf(w, "start it: urne dev up --dir %s\n", r.Dir)
	}
}
