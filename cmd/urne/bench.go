package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Defaults of `urne bench cast`.
const (
	defaultBenchVoters      = 200_000
	defaultBenchConcurrency = 256
	defaultBenchDuration    = 30 * time.Second
	defaultBenchBallotSize  = 1024
	benchElectionName       = "bench"
)

func (a *app) benchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the cluster under synthetic load",
	}
	cmd.AddCommand(a.benchCastCommand())
	cmd.AddCommand(a.benchElectionCommand())
	cmd.AddCommand(a.benchLoginCommand())
	cmd.AddCommand(a.benchSuiteCommand())
	cmd.AddCommand(a.benchRestoreCommand())
	return cmd
}

// loadOptions describe a synthetic cast load.
type loadOptions struct {
	voters, concurrency, ballotSize int
	duration                        time.Duration
}

// benchReport is the JSON of `bench cast`.
type benchReport struct {
	Voters        int     `json:"voters"`
	Concurrency   int     `json:"concurrency"`
	BallotSize    int     `json:"ballot_size"`
	Seconds       float64 `json:"seconds"`
	Acknowledged  int     `json:"acknowledged"`
	CastsPerSec   float64 `json:"casts_per_second"`
	P50Millis     float64 `json:"p50_ms"`
	P99Millis     float64 `json:"p99_ms"`
	MaxMillis     float64 `json:"max_ms"`
	Failed        int     `json:"failed"`
	Unknown       int     `json:"unknown"`
	StoppedReason string  `json:"stopped_reason,omitempty"`
	// DiskWritten is what the block device under a local cluster's folder wrote during the
	// load, every writer on it included; absent for a remote cluster or where the folder is
	// on no block device.
	DiskWritten      uint64  `json:"disk_written_bytes,omitempty"`
	DiskBytesPerCast float64 `json:"disk_bytes_per_cast,omitempty"`
}

func newBenchReport(o loadOptions, s workload.Stats, runErr error) benchReport {
	r := benchReport{Voters: o.voters, Concurrency: o.concurrency, BallotSize: o.ballotSize,
		Seconds: s.Elapsed.Seconds(), Acknowledged: s.Acked, CastsPerSec: s.PerSecond,
		P50Millis: ms(s.P50), P99Millis: ms(s.P99), MaxMillis: ms(s.Max), Failed: s.Failed, Unknown: s.Unknown}
	if runErr != nil {
		r.StoppedReason = runErr.Error()
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (a *app) benchCastCommand() *cobra.Command {
	var conn *connFlags
	o := loadOptions{}
	cmd := &cobra.Command{
		Use:   "cast --cluster DIR",
		Short: "Cast random ballots from many voters at once; report throughput and latency",
		Long: "Cast one random ballot per voter from --concurrency voters at once for --duration.\n" +
			"When the election is not open yet, it is created (\"bench\"), --voters voters are\n" +
			"imported and it is opened. Use a fresh cluster: voters who already voted fail.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setup, t, err := conn.dialAs(roleOperator)
			if err != nil {
				return err
			}
			defer closeClient(setup)
			if o.voters, err = a.prepareElection(cmd.Context(), setup, t, o.voters); err != nil {
				return err
			}
			caster, _, err := conn.dialAs(roleApp)
			if err != nil {
				return err
			}
			defer closeClient(caster)
			r, runErr := a.benchLoad(cmd.Context(), caster, o, localClusterDir(conn.cluster))
			if r == nil {
				return runErr
			}
			return a.emit(r, func(w io.Writer) { printBench(w, *r, "") })
		},
	}
	conn = addConnFlags(cmd, roleApp)
	fl := cmd.Flags()
	fl.IntVar(&o.voters, "voters", defaultBenchVoters, "voters on the roll (imported when the election is not open)")
	fl.IntVar(&o.concurrency, "concurrency", defaultBenchConcurrency, "casts in flight")
	fl.DurationVar(&o.duration, "duration", defaultBenchDuration, "how long new casts start")
	fl.IntVar(&o.ballotSize, "ballot-size", defaultBenchBallotSize, "bytes per random ballot")
	return cmd
}

// dialAs dials with the certificate of role from the cluster folder; with --endpoints the one
// certificate given serves every role.
func (f *connFlags) dialAs(role string) (*client.Client, *clusterTarget, error) {
	g := *f
	if g.cluster != "" {
		g.role = role
	}
	return g.dial()
}

// prepareElection makes sure the election is open with a roll of synthetic voters, and returns
// how many voters the load may use.
func (a *app) prepareElection(ctx context.Context, c *client.Client, t *clusterTarget, voters int) (int, error) {
	st, err := c.GetElection(ctx)
	if err != nil && !errors.Is(err, client.ErrNoElection) {
		return 0, err
	}
	switch st.GetPhase() {
	case urnepb.ElectionPhase_PHASE_OPEN:
		return a.openRoll(ctx, c, voters)
	case urnepb.ElectionPhase_PHASE_CLOSED:
		return 0, errors.New("the election is closed: benchmark a fresh cluster (urne dev up --dir NEWDIR)")
	}
	if err != nil || st.GetPhase() == urnepb.ElectionPhase_PHASE_NONE {
		if err := a.createElection(ctx, c, t, benchElectionName); err != nil {
			return 0, err
		}
	}
	if err := a.importSynthetic(ctx, c, voters); err != nil {
		return 0, err
	}
	if _, err := c.OpenElection(ctx); err != nil {
		return 0, fmt.Errorf("opening the election: %w", err)
	}
	return voters, nil
}

// openRoll sizes a load for an election that is already open: it cannot import any more.
func (a *app) openRoll(ctx context.Context, c *client.Client, voters int) (int, error) {
	counts, err := c.Counts(ctx)
	if err != nil {
		return 0, err
	}
	if counts.GetVoters() == 0 {
		return 0, errors.New("the election is open with an empty roll: nobody can cast")
	}
	if counts.GetEmargements() > 0 {
		fprintf(a.stderr, "warning: %d voters have voted already; their casts will fail\n", counts.GetEmargements())
	}
	return min(voters, int(counts.GetVoters())), nil
}

func (a *app) createElection(ctx context.Context, c *client.Client, t *clusterTarget, name string) error {
	id := ""
	if t.file != nil {
		id = t.file.ElectionID
	}
	if id == "" {
		return errors.New("no election id: run `urne election create` first, or give --cluster")
	}
	if _, err := c.CreateElection(ctx, id, name); err != nil {
		return fmt.Errorf("creating election %s: %w", id, err)
	}
	return nil
}

// importSynthetic imports voters v000001... that the workload casts for.
func (a *app) importSynthetic(ctx context.Context, c *client.Client, voters int) error {
	var sent atomic.Int64
	stop := a.ticker(500*time.Millisecond, func() { a.progress("importing voters: %d of %d", sent.Load(), voters) })
	defer stop()
	_, err := c.ImportVoters(ctx, func() (*urnepb.Voter, error) {
		if sent.Load() == int64(voters) {
			return nil, io.EOF
		}
		id := workload.VoterID(workload.DefaultVoterPrefix, int(sent.Add(1)))
		return &urnepb.Voter{VoterId: id, Name: "Voter " + id}, nil
	})
	if err != nil {
		return fmt.Errorf("importing %d synthetic voters: %w", voters, err)
	}
	return nil
}

// runLoad runs the workload, drawing its progress on a terminal.
func (a *app) runLoad(ctx context.Context, c *client.Client, o loadOptions) (*workload.History, error) {
	cfg := workload.Config{Voters: o.voters, Concurrency: o.concurrency, Duration: o.duration, BallotSize: o.ballotSize}
	h, err := workload.Run(ctx, c, cfg, func(s workload.Stats) {
		a.progress("%5.0fs  %d acknowledged  %.0f casts/s  p99 %s  failed %d  unknown %d",
			s.Elapsed.Seconds(), s.Acked, s.PerSecond, millis(s.P99), s.Failed, s.Unknown)
	})
	a.progressDone()
	return h, err
}

// benchLoad runs the workload and reports it, with what the disk under clusterDir wrote
// meanwhile when clusterDir is not empty. The report is nil when the load did not start.
func (a *app) benchLoad(ctx context.Context, c *client.Client, o loadOptions, clusterDir string) (*benchReport, error) {
	var before uint64
	measured := false
	if clusterDir != "" {
		var err error
		if before, measured, err = deviceWrites(clusterDir); err != nil {
			fprintf(a.stderr, "warning: the disk's writes are not measured: %v\n", err)
		}
	}
	h, runErr := a.runLoad(ctx, c, o)
	if h == nil {
		return nil, runErr
	}
	r := newBenchReport(o, h.Stats(), runErr)
	if measured {
		after, ok, err := deviceWrites(clusterDir)
		switch {
		case err != nil:
			fprintf(a.stderr, "warning: the disk's writes are not measured: %v\n", err)
		case ok && after >= before:
			r.DiskWritten = after - before
			if r.Acknowledged > 0 {
				r.DiskBytesPerCast = float64(r.DiskWritten) / float64(r.Acknowledged)
			}
		}
	}
	return &r, runErr
}

// localClusterDir is dir when it is the folder of a cluster whose nodes all run on this
// machine (urne dev up), so that the disk under it is theirs; "" otherwise.
func localClusterDir(dir string) string {
	if dir == "" {
		return ""
	}
	d, err := openDevCluster(dir, "")
	if err != nil {
		return ""
	}
	for _, id := range d.ids() {
		if d.pid(id) == 0 {
			return ""
		}
	}
	return d.dir
}

// printBench prints a load's results, each line after prefix.
func printBench(w io.Writer, r benchReport, prefix string) {
	fprintf(w, "%s%d casts acknowledged in %.1fs: %.0f casts/s (%d voters, %d at once, %d-byte ballots)\n",
		prefix, r.Acknowledged, r.Seconds, r.CastsPerSec, r.Voters, r.Concurrency, r.BallotSize)
	fprintf(w, "%slatency  p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", prefix, r.P50Millis, r.P99Millis, r.MaxMillis)
	fprintf(w, "%sfailed %d  unknown %d\n", prefix, r.Failed, r.Unknown)
	if r.DiskWritten > 0 {
		fprintf(w, "%sdisk under the cluster: %.0f MB written, %.1f KB per acknowledged cast\n",
			prefix, float64(r.DiskWritten)/1e6, r.DiskBytesPerCast/1e3)
	}
	if r.StoppedReason != "" {
		fprintf(w, "%sthe load stopped early: %s\n", prefix, r.StoppedReason)
	}
}
