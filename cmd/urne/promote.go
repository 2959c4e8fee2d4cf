package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/recovery"
)

// devProcesses lets recovery and drills stop and start the local node processes of a cluster
// folder, the way `urne dev kill|start` do.
type devProcesses struct {
	d    *devCluster
	wait time.Duration
}

func (p devProcesses) Running(id string) bool { return p.d.pid(id) != 0 }

// Stop sends SIGTERM and waits up to stopGrace, then SIGKILL.
func (p devProcesses) Stop(id string) error {
	pid := p.d.pid(id)
	if pid == 0 {
		return p.d.removePIDFile(id)
	}
	if err := signalProcess(pid, syscall.SIGTERM); err != nil {
		return err
	}
	if !p.d.waitGone(id, stopGrace) {
		_, err := p.d.kill(id)
		return err
	}
	return p.d.removePIDFile(id)
}

func (p devProcesses) Kill(id string) error {
	_, err := p.d.kill(id)
	return err
}

// Start starts the node unless it runs and waits until it answers.
func (p devProcesses) Start(ctx context.Context, id string) error {
	if _, _, err := p.d.start(id); err != nil {
		return err
	}
	_, err := waitDevReady(ctx, p.d, []string{id}, false, p.wait)
	return err
}

func (a *app) operatorPromoteDCCommand() *cobra.Command {
	var dc string
	var force bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "promote-dc --cluster DIR --dc DC [--force]",
		Short: "Make the surviving datacenter of a 2+2 cluster a cluster on its own",
		Long: "When one datacenter of a 2+2 layout is lost, the other has no quorum. promote-dc proves\n" +
			"that the most up-to-date survivor (highest last log term, then last index) holds every\n" +
			"entry any survivor knew committed, stops the survivors, makes that one the only voter\n" +
			"(raft's RecoverCluster, on its stopped data), starts it, then starts the other survivors,\n" +
			"which its leader adds back as voters. The lost datacenter's nodes rejoin by themselves\n" +
			"when they return. It refuses, unless --force, when a survivor can be neither asked nor\n" +
			"read, or when the chosen log ends before an index known committed; it refuses even with\n" +
			"--force while a node of another datacenter answers, and when the cluster has a leader.\n" +
			"The survivors' node folders must be in DIR, as in a cluster run by `urne dev`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := cmd.Flag("cluster").Value.String()
			if dir == "" {
				return errors.New("--cluster DIR is required: promote-dc works on the survivors' node folders")
			}
			r, err := a.promoteDC(cmd.Context(), dir, dc, force, wait)
			if r == nil {
				return err
			}
			if emitErr := a.emit(r, func(w io.Writer) { printPromotion(w, r, err) }); emitErr != nil {
				return emitErr
			}
			return err
		},
	}
	addConnFlags(cmd, roleOperator)
	cmd.Flags().StringVar(&dc, "dc", "", "the surviving datacenter to promote")
	cmd.Flags().BoolVar(&force, "force", false, "promote even when no loss of acknowledged writes can be proven")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the new leader and voters")
	must(cmd.MarkFlagRequired("dc"))
	return cmd
}

func (a *app) promoteDC(ctx context.Context, dir, dc string, force bool, wait time.Duration) (*recovery.PromoteReport, error) {
	d, err := openDevCluster(dir, "")
	if err != nil {
		return nil, err
	}
	c, err := d.operatorClient()
	if err != nil {
		return nil, err
	}
	defer closeClient(c)
	return recovery.Promote(ctx, recovery.PromoteOptions{Dir: d.dir, File: d.file, DC: dc, Force: force, Client: c,
		Procs: devProcesses{d: d, wait: wait}, Wait: wait, Logf: func(f string, args ...any) { a.say(f, args...) }})
}

func printPromotion(w io.Writer, r *recovery.PromoteReport, err error) {
	for _, s := range r.Survivors {
		how := "answered"
		if s.OnDisk {
			how = "read from disk"
		} else if !s.Answered {
			how = "unknown: " + s.Error
		}
		fprintf(w, "%s: last index %d (term %d), commit %d, applied %d (%s)\n", s.ID, s.LastIndex, s.LastTerm, s.CommitIndex, s.AppliedIndex, how)
	}
	for _, p := range r.Problems {
		fprintf(w, "NOT PROVEN: %s\n", p)
	}
	if err != nil {
		fprintf(w, "promotion of %s not done\n", r.DC)
		return
	}
	fprintf(w, "%s promoted in %.1fs: %s recovered alone (highest index known committed: %d); voters now %s\n",
		r.DC, r.Seconds, r.Chosen, r.KnownCommit, strings.Join(r.Voters, ", "))
}
