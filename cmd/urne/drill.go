package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/drill"
	"github.com/urne-vote/urne/recovery"
)

// drillFlags are the flags every drill shares.
type drillFlags struct {
	cluster, binary string
	o               drill.Options
}

func addDrillFlags(cmd *cobra.Command) *drillFlags {
	f := &drillFlags{}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster folder of a running cluster (as `urne dev up` writes it)")
	fl.BoolVar(&f.o.NoLoad, "no-load", false, "run without synthetic voting (no RPO check; recovery measured with reads)")
	fl.IntVar(&f.o.Concurrency, "concurrency", 4, "casts in flight of the synthetic load")
	fl.IntVar(&f.o.PoolBlocks, "pool-blocks", 400, fmt.Sprintf("blocks of %d rehearsal voters imported when the drill creates the election", drill.PoolBlockSize))
	fl.DurationVar(&f.o.Settle, "settle", time.Second, "load time before each action")
	fl.StringVar(&f.binary, "urne-binary", "", "urne binary the nodes run (default: this one)")
	must(fl.MarkHidden("urne-binary"))
	must(cmd.MarkFlagRequired("cluster"))
	return f
}

func (a *app) drillCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Prove failover, restore and datacenter resilience on a live cluster, under load",
		Long: "Each drill runs on a live cluster (a folder `urne dev up` runs), under synthetic voting\n" +
			"unless --no-load, and ends with a report (-o json for one JSON document) that is stored\n" +
			"in the cluster; `urne drill status` lists the last run of each and which are overdue\n" +
			"(no success in 92 days). A drill exits non-zero when a claim it checks is false.\n" +
			"The load casts only into a rehearsal election the drill created itself (on a cluster with\n" +
			"no election): drills never cast into a real election.",
	}
	cmd.AddCommand(a.drillFailoverCommand(), a.drillRestoreCommand(), a.drillMigrationCommand(),
		a.drillDCLossCommand(), a.drillStatusCommand())
	return cmd
}

// runDrill opens the cluster, runs one drill and prints its report.
func (a *app) runDrill(ctx context.Context, f *drillFlags, run func(e *drill.Env) *drill.Report) error {
	d, err := openDevCluster(f.cluster, f.binary)
	if err != nil {
		return err
	}
	launch := func(dir string) (recovery.Processes, error) {
		sd, err := openDevCluster(dir, f.binary)
		if err != nil {
			return nil, err
		}
		return devProcesses{d: sd, wait: defaultReadyWait}, nil
	}
	e, err := drill.NewEnv(d.dir, devProcesses{d: d, wait: defaultReadyWait}, launch)
	if err != nil {
		return err
	}
	defer e.Close()
	e.Logf = func(format string, args ...any) { a.say(format, args...) }
	r := run(e)
	if err := a.emit(r, func(w io.Writer) { printDrill(w, r) }); err != nil {
		return err
	}
	if !r.OK {
		return &exitError{code: 1, msg: r.Verdict}
	}
	return nil
}

func (a *app) drillFailoverCommand() *cobra.Command {
	var o drill.FailoverOptions
	var f *drillFlags
	cmd := &cobra.Command{
		Use:   "failover --cluster DIR [--mode graceful|hard] [--count N]",
		Short: "Move leadership away N times (transfer or SIGKILL); measure RTO; prove RPO = 0",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Options = f.o
			return a.runDrill(cmd.Context(), f, func(e *drill.Env) *drill.Report { return e.Failover(cmd.Context(), o) })
		},
	}
	f = addDrillFlags(cmd)
	cmd.Flags().StringVar(&o.Mode, "mode", drill.ModeHard, "graceful (leadership transfer) or hard (SIGKILL of the leader's process)")
	cmd.Flags().IntVar(&o.Count, "count", 1, "failovers in a row")
	return cmd
}

func (a *app) drillRestoreCommand() *cobra.Command {
	var o drill.RestoreOptions
	var f *drillFlags
	var sf *secretFlags
	cmd := &cobra.Command{
		Use:   "restore --cluster DIR [--from FILE]",
		Short: "Back up (or take FILE), restore into a scratch cluster, compare digests at the backup's index",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Options = f.o
			var err error
			if o.Secret, err = sf.secret(f.cluster); err != nil {
				return err
			}
			return a.runDrill(cmd.Context(), f, func(e *drill.Env) *drill.Report { return e.Restore(cmd.Context(), o) })
		},
	}
	f = addDrillFlags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.From, "from", "", "restore this archive instead of taking a fresh backup")
	fl.StringVar(&o.Topology, "scratch-topology", "3", "layout of the scratch cluster")
	fl.StringVar(&o.ScratchDir, "scratch-dir", "", "empty folder for the scratch cluster (default: a temporary one)")
	fl.BoolVar(&o.Keep, "keep-scratch", false, "leave the scratch cluster folder (its nodes are stopped)")
	sf = addSecretFlags(cmd)
	return cmd
}

func (a *app) drillMigrationCommand() *cobra.Command {
	var o drill.MigrationOptions
	var f *drillFlags
	cmd := &cobra.Command{
		Use:   "dc-migration --cluster DIR [--from dc1] [--to dc2]",
		Short: "Move every vote and the leadership out of a datacenter and back, one change at a time",
		Long: "Leadership moves to a voter of --to; each voter of --from becomes a nonvoter (keeping its\n" +
			"copy; every node is told not to promote it back meanwhile), so the quorum lives in the other\n" +
			"sites (dc2 and the witness in 2+2+1); then each becomes a voter again and leadership\n" +
			"returns. Each configuration change commits before the next, under load. Then the replicas\n" +
			"and the load's history are checked.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Options = f.o
			return a.runDrill(cmd.Context(), f, func(e *drill.Env) *drill.Report { return e.Migration(cmd.Context(), o) })
		},
	}
	f = addDrillFlags(cmd)
	cmd.Flags().StringVar(&o.From, "from", "dc1", "datacenter whose votes and leadership move away and back")
	cmd.Flags().StringVar(&o.To, "to", "dc2", "datacenter that leads meanwhile")
	return cmd
}

func (a *app) drillDCLossCommand() *cobra.Command {
	var o drill.DCLossOptions
	var f *drillFlags
	cmd := &cobra.Command{
		Use:   "dc-loss --cluster DIR [--dc dc1] [--outage 5s]",
		Short: "Kill a whole datacenter; check the election goes on (or promote the survivors); restart it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Options = f.o
			return a.runDrill(cmd.Context(), f, func(e *drill.Env) *drill.Report { return e.DCLoss(cmd.Context(), o) })
		},
	}
	f = addDrillFlags(cmd)
	cmd.Flags().StringVar(&o.DC, "dc", "dc1", "the datacenter that is lost")
	cmd.Flags().DurationVar(&o.Outage, "outage", 5*time.Second, "how long it stays down")
	cmd.Flags().BoolVar(&o.Force, "force", false, "passed to promote-dc when the survivors have no quorum")
	return cmd
}

func (a *app) drillStatusCommand() *cobra.Command {
	var conn *connFlags
	cmd := &cobra.Command{
		Use:   "status --cluster DIR",
		Short: "The last run and result of each drill, and which are overdue (no success in 92 days)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			r, err := drill.ReadStatus(cmd.Context(), c, time.Now())
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) { printDrillStatus(w, r) })
		},
	}
	conn = addConnFlags(cmd, roleOperator)
	return cmd
}

func printDrill(w io.Writer, r *drill.Report) {
	fprintf(w, "\n%s drill", r.Drill)
	if r.Mode != "" {
		fprintf(w, " (%s)", r.Mode)
	}
	fprintf(w, " on election %s: %.1fs\n", r.ElectionID, r.Seconds)
	for _, f := range r.Failovers {
		fprintf(w, "  failover %d: %s -> %s, no leader for %.0f ms, RTO %.0f ms", f.Round, f.OldLeader, f.NewLeader, f.NoLeaderMillis, f.RTOMillis)
		if f.RestartMillis > 0 {
			fprintf(w, ", restarted and caught up in %.0f ms", f.RestartMillis)
		}
		fprintf(w, "\n")
	}
	printDrillDetails(w, r)
	if l := r.Load; l != nil {
		fprintf(w, "  load: %d acknowledged, %d failed, %d unknown casts (%.0f/s, %d at once); %d ballots before\n",
			l.Acked, l.Failed, l.Unknown, l.PerSecond, l.Concurrency, l.Baseline)
	}
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fprintf(w, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
	}
	fprintf(w, "%s\n", r.Verdict)
	if r.StoreError != "" {
		fprintf(w, "the report could not be stored in the cluster: %s\n", r.StoreError)
	} else {
		fprintf(w, "report stored in the cluster at index %d\n", r.StoredIndex)
	}
}

func printDrillDetails(w io.Writer, r *drill.Report) {
	if f := r.Restore; f != nil && f.Index > 0 {
		fprintf(w, "  archive %s: %s, state %s at index %d; backup %.1fs, restore %.1fs, scratch start %.1fs (%s)\n",
			f.Archive, humanBytes(uint64(f.ArchiveBytes)), humanBytes(f.StateBytes), f.Index, f.BackupSeconds, f.RestoreSeconds,
			f.StartSeconds, strings.Join(f.ScratchNodes, ", "))
	}
	if m := r.Migration; m != nil && m.VotersAway != nil {
		fprintf(w, "  voters before %v (leader %s), away %v (leader %s), after %v (leader %s); %d configuration changes\n",
			m.VotersBefore, m.LeaderBefore, m.VotersAway, m.LeaderAway, m.VotersAfter, m.LeaderAfter, m.ConfigChanges)
	}
	if d := r.DCLoss; d != nil && d.LeaderAfter != "" {
		fprintf(w, "  lost %v; %s leads after %.0f ms; %d casts during the outage; back and caught up in %.0f ms\n",
			d.Lost, d.LeaderAfter, d.NoLeaderMillis, d.AckedDuringOutage, d.CatchUpMillis)
	}
}

func printDrillStatus(w io.Writer, r *drill.StatusReport) {
	rows := make([]string, len(r.Drills))
	for i, s := range r.Drills {
		last, result, success, rto := "never", "-", "never", "-"
		if s.LastRun != nil {
			last, result = s.LastRun.Format(time.RFC3339), "FAILED"
			if s.LastOK {
				result = "passed"
			}
		}
		if s.LastSuccess != nil {
			success = fmt.Sprintf("%s (%.0f days ago)", s.LastSuccess.Format(time.RFC3339), s.DaysSinceSuccess)
			rto = fmt.Sprintf("%.0f ms", s.LastRTOMillis)
		}
		overdue := "no"
		if s.Overdue {
			overdue = "OVERDUE"
		}
		rows[i] = strings.Join([]string{s.Drill, fmt.Sprint(s.Runs), last, result, success, rto, overdue}, "\t")
	}
	table(w, "DRILL\tRUNS\tLAST RUN\tRESULT\tLAST SUCCESS\tRTO\tDUE", rows)
	if len(r.Overdue) > 0 {
		fprintf(w, "\noverdue (no success in %d days): %s\n", int(drill.OverdueAfter.Hours()/24), strings.Join(r.Overdue, ", "))
	}
}
