package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
)

// Defaults of `urne demo`.
const (
	demoElection     = "demo"
	demoElectionName = "Urne demo election"
	demoVoters       = 20_000
	demoConcurrency  = 64
	demoDuration     = 20 * time.Second
	demoKillAfter    = 6 * time.Second
	demoRestartAfter = 4 * time.Second
	demoBallotSize   = 256
	// demoKillFraction is the percentage of voters after which the leader is killed even
	// before --kill-after, so that a fast cluster still fails over under load.
	demoKillFraction    = 50
	demoConvergeWait    = 60 * time.Second
	demoNewLeaderWait   = 30 * time.Second
	demoRestartWait     = 30 * time.Second
	demoVerifyStatement = "every acknowledged ballot is present on every node; no voter has two ballots"
)

// demoOptions are the inputs of `urne demo`.
type demoOptions struct {
	dir, binary                       string
	voters, concurrency               int
	duration, killAfter, restartAfter time.Duration
	keep                              bool
}

// demoReport is the JSON of `urne demo`.
type demoReport struct {
	Dir        string       `json:"dir"`
	ElectionID string       `json:"election_id"`
	Failover   failover     `json:"failover"`
	Load       benchReport  `json:"load"`
	Counts     []nodeCounts `json:"counts"`
	Verify     verifyView   `json:"verify"`
	Kept       bool         `json:"kept"`
}

// failover is what the demo measured around the leader's crash.
type failover struct {
	KilledLeader string `json:"killed_leader"`
	KilledPID    int    `json:"killed_pid"`
	// KilledAtSeconds is when the kill happened, counted from the start of the load.
	KilledAtSeconds float64 `json:"killed_at_s"`
	NewLeader       string  `json:"new_leader"`
	// NewLeaderMillis is the time from the kill to the moment a surviving node named a new leader.
	NewLeaderMillis float64 `json:"new_leader_ms"`
	// FirstAckMillis is the time from the kill to the first acknowledged cast after the stall.
	FirstAckMillis float64 `json:"first_ack_ms"`
	Restarted      bool    `json:"restarted"`

	killedAt time.Time
}

// nodeCounts is one node's counts after the election closed.
type nodeCounts struct {
	Node        string `json:"node"`
	Endpoint    string `json:"endpoint"`
	Voters      uint64 `json:"voters"`
	Emargements uint64 `json:"emargements"`
	Ballots     uint64 `json:"ballots"`
	Index       uint64 `json:"index"`
	Error       string `json:"error,omitempty"`
}

// verifyView is the JSON of a workload.Report.
type verifyView struct {
	OK         bool     `json:"ok"`
	Statement  string   `json:"statement"`
	Acked      int      `json:"acked"`
	Failed     int      `json:"failed"`
	Unknown    int      `json:"unknown"`
	Violations []string `json:"violations"`
}

func (a *app) demoCommand() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo --dir DIR",
		Short: "Run a 2+2+1 cluster, cast under load, crash the leader, and check that nothing was lost",
		Long: "Start a fresh 2+2+1 cluster in DIR (a previous demo there is removed), create an election,\n" +
			"import voters, open it and cast from many voters at once. A few seconds in, the leader's\n" +
			"process is killed with SIGKILL and later restarted. The demo then closes the election,\n" +
			"waits for the nodes to converge and checks that " + demoVerifyStatement + ".\n" +
			"It exits non-zero when that check fails.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.runDemo(cmd.Context(), o)
			if r == nil {
				return err
			}
			if emitErr := a.emit(r, func(w io.Writer) { printDemo(w, r) }); emitErr != nil {
				return emitErr
			}
			if err == nil && !r.Verify.OK {
				err = &exitError{code: 1, msg: fmt.Sprintf("verification found %d violations", len(r.Verify.Violations))}
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.dir, "dir", "", "folder of the demo cluster")
	fl.IntVar(&o.voters, "voters", demoVoters, "voters on the roll")
	fl.IntVar(&o.concurrency, "concurrency", demoConcurrency, "voters casting at once")
	fl.DurationVar(&o.duration, "duration", demoDuration, "how long the load runs")
	fl.DurationVar(&o.killAfter, "kill-after", demoKillAfter, "when the leader is killed, from the start of the load")
	fl.DurationVar(&o.restartAfter, "restart-after", demoRestartAfter, "when the killed node restarts, from the kill")
	fl.BoolVar(&o.keep, "keep", false, "leave the cluster running at the end")
	fl.StringVar(&o.binary, "urne-binary", "", "urne binary the nodes run (default: this one)")
	must(fl.MarkHidden("urne-binary"))
	must(cmd.MarkFlagRequired("dir"))
	return cmd
}

// demoSession is one run of the demo.
type demoSession struct {
	a        *app
	o        demoOptions
	d        *devCluster
	operator *client.Client // setup, status, verification
	voter    *client.Client // the casts (app certificate)
	start    time.Time
	acked    atomic.Int64 // casts acknowledged so far, as last reported by the load
}

// runDemo runs the whole demo. It returns a report whenever the load ran, with the error
// that cut the rest short, if any. The cluster is stopped at the end unless o.keep.
func (a *app) runDemo(ctx context.Context, o demoOptions) (*demoReport, error) {
	if o.killAfter >= o.duration {
		return nil, fmt.Errorf("--kill-after %v must come before the end of the load (--duration %v)", o.killAfter, o.duration)
	}
	if err := clearOldDemo(o.dir, o.binary); err != nil {
		return nil, err
	}
	s := &demoSession{a: a, o: o, start: time.Now()}
	s.say("starting a 2+2+1 cluster in %s", o.dir)
	d, up, err := a.devUp(ctx, upOptions{dir: o.dir, binary: o.binary, topology: defaultTopology, election: demoElection, wait: defaultReadyWait})
	if d != nil && !o.keep {
		defer s.down(d)
	}
	if err != nil {
		return nil, err
	}
	s.d = d
	s.say("%d nodes up, leader %s", len(up.Nodes), up.Leader)
	if err := s.connect(); err != nil {
		return nil, err
	}
	defer s.close()
	r := &demoReport{Dir: d.dir, ElectionID: d.file.ElectionID, Kept: o.keep}
	return r, s.run(ctx, r)
}

// clearOldDemo stops and removes the cluster of a previous demo in dir. It refuses a folder
// that is not one (no cluster.json) but holds files.
func clearOldDemo(dir, binary string) error {
	if dir == "" {
		return errors.New("--dir is required")
	}
	if _, err := os.Stat(filepath.Join(dir, client.ClusterFileName)); err == nil {
		if d, err := openDevCluster(dir, binary); err == nil {
			if _, err := d.stopAll(stopGrace); err != nil {
				return fmt.Errorf("stopping the previous demo in %s: %w", dir, err)
			}
		}
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s holds files but no %s, so it is not a demo folder: refusing to remove it", dir, client.ClusterFileName)
	}
	return nil
}

func (s *demoSession) connect() error {
	var err error
	if s.operator, err = s.clientFor(roleOperator); err != nil {
		return err
	}
	s.voter, err = s.clientFor(roleApp)
	return err
}

func (s *demoSession) clientFor(role string) (*client.Client, error) {
	cfg, _, err := client.LoadClusterDir(s.d.dir, role)
	if err != nil {
		return nil, err
	}
	return client.New(cfg)
}

func (s *demoSession) close() {
	for _, c := range []*client.Client{s.operator, s.voter} {
		if c != nil {
			closeClient(c)
		}
	}
}

func (s *demoSession) down(d *devCluster) {
	if _, err := d.stopAll(stopGrace); err != nil {
		s.say("stopping the cluster: %v", err)
		return
	}
	s.say("cluster stopped (use --keep to leave it running)")
}

// say prints a progress line stamped with the time since the demo started.
func (s *demoSession) say(format string, args ...any) {
	s.a.say("[%5.1fs] "+format, append([]any{time.Since(s.start).Seconds()}, args...)...)
}

// run performs the election part of the demo and fills r.
func (s *demoSession) run(ctx context.Context, r *demoReport) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	h, fo, err := s.loadWithFailover(ctx)
	if h == nil {
		return err
	}
	r.Failover = fo
	stats := h.Stats()
	r.Load = newBenchReport(loadOptions{voters: s.o.voters, concurrency: s.o.concurrency, ballotSize: demoBallotSize}, stats, nil)
	s.say("load stopped: %d casts acknowledged (%.0f/s), %d failed, %d unknown", stats.Acked, stats.PerSecond, stats.Failed, stats.Unknown)
	if err != nil {
		return err
	}
	return s.check(ctx, h, r)
}

// prepare creates the election, imports the voters and opens it.
func (s *demoSession) prepare(ctx context.Context) error {
	if _, err := s.operator.CreateElection(ctx, s.d.file.ElectionID, demoElectionName); err != nil {
		return fmt.Errorf("creating the election: %w", err)
	}
	s.say("election %q created; importing %d voters", s.d.file.ElectionID, s.o.voters)
	if err := s.a.importSynthetic(ctx, s.operator, s.o.voters); err != nil {
		return err
	}
	if _, err := s.operator.OpenElection(ctx); err != nil {
		return fmt.Errorf("opening the election: %w", err)
	}
	s.say("election open; %d voters cast at once for %v, the leader is killed after %v", s.o.concurrency, s.o.duration, s.o.killAfter)
	return nil
}

// loadRun is a workload running in the background; h and err are set when done is closed.
type loadRun struct {
	done chan struct{}
	h    *workload.History
	err  error
}

// loadWithFailover runs the load and, during it, kills the leader, waits for a new one and
// restarts the killed node.
func (s *demoSession) loadWithFailover(ctx context.Context) (*workload.History, failover, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loadStart := time.Now()
	run := &loadRun{done: make(chan struct{})}
	go func() {
		defer close(run.done)
		run.h, run.err = workload.Run(ctx, s.voter, workload.Config{Voters: s.o.voters, Concurrency: s.o.concurrency,
			Duration: s.o.duration, BallotSize: demoBallotSize, Retries: true}, s.progressPrinter())
	}()
	fo, err := s.failover(ctx, loadStart, run.done)
	if err != nil {
		cancel()
	}
	<-run.done
	if run.h != nil && !fo.killedAt.IsZero() {
		if d, ok := firstAckAfterStall(run.h.Acked(), fo.killedAt); ok {
			fo.FirstAckMillis = ms(d)
		}
	}
	return run.h, fo, errors.Join(err, run.err)
}

// progressPrinter prints, every second of the load, the casts acknowledged in that second:
// the failover shows as a gap.
func (s *demoSession) progressPrinter() func(workload.Stats) {
	last := 0
	return func(st workload.Stats) {
		s.say("  load %4.1fs: %6d acknowledged, %5d in the last second", st.Elapsed.Seconds(), st.Acked, st.Acked-last)
		last = st.Acked
		s.acked.Store(int64(st.Acked))
	}
}

// failover waits for the kill time, kills the leader, measures the election of a new one and
// restarts the killed node after restartAfter. It gives up when the load ends first.
func (s *demoSession) failover(ctx context.Context, loadStart time.Time, loadDone <-chan struct{}) (failover, error) {
	var fo failover
	if !s.waitForKill(ctx, loadStart.Add(s.o.killAfter), loadDone) {
		return fo, errors.New("the load ended before the leader could be killed")
	}
	if err := s.killLeader(ctx, &fo); err != nil {
		return fo, err
	}
	fo.KilledAtSeconds = fo.killedAt.Sub(loadStart).Seconds()
	if err := s.awaitNewLeader(ctx, &fo); err != nil {
		return fo, err
	}
	if !waitUntil(ctx, fo.killedAt.Add(s.o.restartAfter), nil) {
		return fo, ctx.Err()
	}
	return fo, s.restart(ctx, &fo)
}

// waitForKill waits until the kill time, or until half of the voters have cast on a
// cluster fast enough to run out of voters before then.
func (s *demoSession) waitForKill(ctx context.Context, t time.Time, loadDone <-chan struct{}) bool {
	early := int64(s.o.voters) * demoKillFraction / 100
	for time.Now().Before(t) && s.acked.Load() < early {
		if !waitUntil(ctx, time.Now().Add(100*time.Millisecond), loadDone) {
			return false
		}
	}
	return true
}

// waitUntil sleeps until t; it returns false when ctx ends or stop is closed first.
func waitUntil(ctx context.Context, t time.Time, stop <-chan struct{}) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

func (s *demoSession) killLeader(ctx context.Context, fo *failover) error {
	answers := askNodes(ctx, s.operator, s.d.targets(s.d.ids()))
	leader := seenLeader(answers)
	if leader == "" {
		return errors.New("no leader known: cannot pick the node to kill")
	}
	pid := s.d.pid(leader)
	if pid == 0 {
		return fmt.Errorf("the leader %s has no running process in %s", leader, s.d.dir)
	}
	fo.KilledLeader, fo.KilledPID, fo.killedAt = leader, pid, time.Now()
	if _, err := s.d.kill(leader); err != nil {
		return err
	}
	s.say("killed the leader %s (pid %d) with SIGKILL", leader, pid)
	return nil
}

// awaitNewLeader polls the surviving nodes until one names a leader other than the killed one.
func (s *demoSession) awaitNewLeader(ctx context.Context, fo *failover) error {
	survivors := slices.DeleteFunc(s.d.ids(), func(id string) bool { return id == fo.KilledLeader })
	ctx, cancel := context.WithTimeout(ctx, demoNewLeaderWait)
	defer cancel()
	for {
		leader := seenLeader(askNodes(ctx, s.operator, s.d.targets(survivors)))
		if leader != "" && leader != fo.KilledLeader {
			fo.NewLeader = leader
			fo.NewLeaderMillis = ms(time.Since(fo.killedAt))
			s.say("new leader %s, %.0f ms after the kill", leader, fo.NewLeaderMillis)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no new leader within %v of the kill", demoNewLeaderWait)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *demoSession) restart(ctx context.Context, fo *failover) error {
	pid, _, err := s.d.start(fo.KilledLeader)
	if err != nil {
		return err
	}
	s.say("restarted %s (pid %d)", fo.KilledLeader, pid)
	ctx, cancel := context.WithTimeout(ctx, demoRestartWait)
	defer cancel()
	if _, err := s.d.waitReady(ctx, s.operator, []string{fo.KilledLeader}, false); err != nil {
		return err
	}
	fo.Restarted = true
	s.say("%s answers again and catches up", fo.KilledLeader)
	return nil
}

// check closes the election, waits for convergence, reads every node and verifies the history.
func (s *demoSession) check(ctx context.Context, h *workload.History, r *demoReport) error {
	if _, err := s.operator.CloseElection(ctx); err != nil {
		return fmt.Errorf("closing the election: %w", err)
	}
	s.say("election closed; waiting for every node to apply the same index")
	endpoints := s.d.file.Endpoints()
	cctx, cancel := context.WithTimeout(ctx, demoConvergeWait)
	err := workload.WaitConverged(cctx, s.operator, endpoints)
	cancel()
	if err != nil {
		return err
	}
	r.Counts = s.counts(ctx)
	report, err := h.Verify(ctx, s.operator, endpoints)
	r.Verify = viewReport(report)
	if err != nil {
		return err
	}
	if report.OK() {
		s.say("verified: %s", demoVerifyStatement)
	} else {
		s.say("VERIFICATION FAILED: %d violations", len(report.Violations))
	}
	return nil
}

// counts reads each node's own counts (stale reads, so each node answers for itself).
func (s *demoSession) counts(ctx context.Context) []nodeCounts {
	var out []nodeCounts
	for _, n := range s.d.file.Nodes {
		nc := nodeCounts{Node: n.ID, Endpoint: n.GRPC}
		resp, err := s.operator.Counts(ctx, client.Stale(), client.OnEndpoint(n.GRPC))
		if err != nil {
			nc.Error = err.Error()
		} else {
			nc.Voters, nc.Emargements, nc.Ballots, nc.Index = resp.GetVoters(), resp.GetEmargements(), resp.GetBallots(), resp.GetIndex()
		}
		out = append(out, nc)
	}
	return out
}

func viewReport(r workload.Report) verifyView {
	v := verifyView{OK: r.OK(), Statement: demoVerifyStatement, Acked: r.Acked, Failed: r.Failed, Unknown: r.Unknown, Violations: []string{}}
	for _, viol := range r.Violations {
		v.Violations = append(v.Violations, viol.String())
	}
	return v
}

// firstAckAfterStall finds the end of the longest pause in acknowledgments after the kill:
// replies already on their way when the leader died may arrive just after the kill, so the
// first acknowledgment after it is not enough.
func firstAckAfterStall(acked []workload.Op, killedAt time.Time) (time.Duration, bool) {
	var ends []time.Time
	for _, op := range acked {
		if op.End.After(killedAt) {
			ends = append(ends, op.End)
		}
	}
	if len(ends) == 0 {
		return 0, false
	}
	slices.SortFunc(ends, func(x, y time.Time) int { return x.Compare(y) })
	prev, bestGap, bestEnd := killedAt, time.Duration(-1), ends[0]
	for _, e := range ends {
		if gap := e.Sub(prev); gap > bestGap {
			bestGap, bestEnd = gap, e
		}
		prev = e
	}
	return bestEnd.Sub(killedAt), true
}

func printDemo(w io.Writer, r *demoReport) {
	fo := r.Failover
	fprintf(w, "\nFailover\n")
	fprintf(w, "  killed leader %s (pid %d) %.1fs into the load\n", fo.KilledLeader, fo.KilledPID, fo.KilledAtSeconds)
	fprintf(w, "  new leader %s known after %.0f ms\n", fo.NewLeader, fo.NewLeaderMillis)
	fprintf(w, "  first acknowledged cast after the kill: %.0f ms\n", fo.FirstAckMillis)
	fprintf(w, "\nLoad\n")
	printBench(w, r.Load, "  ")
	fprintf(w, "\nCounts per node (election closed, nodes converged)\n")
	rows := make([]string, len(r.Counts))
	for i, c := range r.Counts {
		if c.Error != "" {
			rows[i] = fmt.Sprintf("%s\terror: %s", c.Node, c.Error)
			continue
		}
		rows[i] = fmt.Sprintf("%s\t%d\t%d\t%d\t%d", c.Node, c.Voters, c.Emargements, c.Ballots, c.Index)
	}
	table(w, "NODE\tVOTERS\tEMARGEMENTS\tBALLOTS\tINDEX", rows)
	fprintf(w, "\nVerification: %d acknowledged, %d failed, %d unknown casts\n", r.Verify.Acked, r.Verify.Failed, r.Verify.Unknown)
	if r.Verify.OK {
		fprintf(w, "  OK: %s\n", r.Verify.Statement)
	}
	for _, v := range r.Verify.Violations {
		fprintf(w, "  VIOLATION %s\n", v)
	}
	if r.Kept {
		fprintf(w, "\nThe cluster still runs: urne status --cluster %s; urne dev down --dir %s\n", r.Dir, r.Dir)
	}
}
