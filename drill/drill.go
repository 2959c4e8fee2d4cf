// Package drill owns the operational drills SREs run every quarter on a live cluster: failover,
// restore, datacenter migration and datacenter loss, each under synthetic load, each ending
// with a report that says what was proven (or what failed) and is stored in the cluster.
package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/recovery"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Names of the drills, as stored in the cluster and exported in metrics.
const (
	NameFailover    = "failover"
	NameRestore     = "restore"
	NameDCMigration = "dc-migration"
	NameDCLoss      = "dc-loss"
)

// Names lists every drill.
var Names = []string{NameFailover, NameRestore, NameDCMigration, NameDCLoss}

// Sentinel errors of the drills.
var (
	// ErrNoRehearsal: the cluster's election is not one a drill may cast into.
	ErrNoRehearsal = errors.New("no rehearsal election to cast into")
	// ErrNoProcesses: the drill kills or starts nodes, and was given no way to.
	ErrNoProcesses = errors.New("this drill needs control of the node processes (a cluster run by `urne dev`)")
)

// OverdueAfter is how long a drill may go without a success: a quarter.
const OverdueAfter = 92 * 24 * time.Hour

// maxStoredReport bounds the JSON report stored in the cluster (the state machine takes 64 KiB).
const maxStoredReport = 60 << 10

// Env is the live cluster a drill runs on and the means to act on it.
type Env struct {
	// Dir is the cluster folder; File its cluster.json.
	Dir  string
	File *client.ClusterFile
	// Operator reads state, moves leadership and votes, and stores reports; Organizer prepares
	// the rehearsal election; App casts the synthetic load.
	Operator, Organizer, App *client.Client
	// Procs stops, kills and starts the cluster's node processes.
	Procs recovery.Processes
	// Launch returns the processes of another cluster folder (the restore drill's scratch).
	Launch func(dir string) (recovery.Processes, error)
	// Logf narrates the drill as it runs; nil is silent.
	Logf  func(format string, args ...any)
	Hooks Hooks
}

// Hooks let tests break a claim between the steps of a drill, to show the drill notices.
type Hooks struct {
	// NodeStopped runs while a node the drill stopped or killed is down.
	NodeStopped func(ctx context.Context, id string) error
	// BeforeChecks runs once the load has stopped, before its history is checked.
	BeforeChecks func(ctx context.Context, h *workload.History) error
}

// Options are what every drill accepts.
type Options struct {
	// NoLoad runs the drill without synthetic voting: no RPO check is then possible, and
	// recovery times are measured with linearizable reads.
	NoLoad bool
	// Concurrency is the number of casts in flight (default 4).
	Concurrency int
	// PoolBlocks is the number of blocks of PoolBlockSize voters imported when the drill has
	// to create the rehearsal election itself (default 400).
	PoolBlocks int
	// Settle is the load time before the first action and between actions (default 1s).
	Settle time.Duration
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.PoolBlocks <= 0 {
		o.PoolBlocks = 400
	}
	if o.Settle <= 0 {
		o.Settle = time.Second
	}
	return o
}

// Report is the outcome of one drill run: stored in the cluster and printed.
type Report struct {
	Drill      string    `json:"drill"`
	Mode       string    `json:"mode,omitempty"`
	ElectionID string    `json:"election_id"`
	OK         bool      `json:"ok"`
	Verdict    string    `json:"verdict"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Seconds    float64   `json:"seconds"`
	// RTOMillis is the worst time to the first acknowledged write after a disruption.
	RTOMillis float64          `json:"rto_ms,omitempty"`
	Checks    []Check          `json:"checks"`
	Steps     []Step           `json:"steps"`
	Failovers []FailoverRound  `json:"failovers,omitempty"`
	Restore   *RestoreFigures  `json:"restore,omitempty"`
	Migration *MigrationReport `json:"migration,omitempty"`
	DCLoss    *DCLossReport    `json:"dc_loss,omitempty"`
	Load      *LoadReport      `json:"load,omitempty"`
	Error     string           `json:"error,omitempty"`
	// StoredIndex is the raft index the report was stored at; StoreError why it was not.
	StoredIndex uint64 `json:"stored_index,omitempty"`
	StoreError  string `json:"store_error,omitempty"`

	start time.Time
}

// Check is one claim the drill verified.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Step is one thing the drill did, at a time counted from its start.
type Step struct {
	AtSeconds float64 `json:"at_s"`
	What      string  `json:"what"`
}

func newReport(e *Env, name, mode string) *Report {
	now := time.Now()
	return &Report{Drill: name, Mode: mode, ElectionID: e.File.ElectionID, StartedAt: now.UTC(), start: now,
		Checks: []Check{}, Steps: []Step{}}
}

// step records and narrates one action.
func (e *Env) step(r *Report, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	at := time.Since(r.start).Seconds()
	r.Steps = append(r.Steps, Step{AtSeconds: at, What: what})
	if e.Logf != nil {
		e.Logf("[%6.1fs] %s", at, what)
	}
}

// check records a claim.
func (r *Report) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// finish sets the verdict: the drill passed when it ran to its end and every claim held.
func (r *Report) finish(err error) {
	r.FinishedAt = time.Now().UTC()
	r.Seconds = time.Since(r.start).Seconds()
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	switch {
	case err != nil:
		r.Error = err.Error()
		r.Verdict = fmt.Sprintf("FAILED: the %s drill could not complete: %v", r.Drill, err)
	case len(failed) > 0:
		r.Verdict = fmt.Sprintf("FAILED: %s", strings.Join(failed, "; "))
	case len(r.Checks) == 0:
		r.Verdict = "FAILED: nothing was checked"
	default:
		r.OK = true
		r.Verdict = "PASSED: " + r.passedSummary()
	}
	if len(r.Verdict) > 1000 {
		r.Verdict = r.Verdict[:997] + "..."
	}
}

func (r *Report) passedSummary() string {
	names := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		names[i] = c.Name
	}
	s := "every claim held (" + strings.Join(names, ", ") + ")"
	if r.RTOMillis > 0 {
		s += fmt.Sprintf("; worst RTO %.0f ms", r.RTOMillis)
	}
	return s
}

// store records the report in the cluster; the drill's outcome does not depend on it, but a
// report that could not be stored says so.
func (e *Env) store(ctx context.Context, r *Report) {
	body, err := storedJSON(r)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		r.StoredIndex, err = e.Operator.RecordDrill(ctx, &urnepb.DrillReport{Name: r.Drill, Ok: r.OK, Summary: r.Verdict,
			StartedAtUnixNano: r.StartedAt.UnixNano(), FinishedAtUnixNano: r.FinishedAt.UnixNano(),
			RtoNanos: int64(r.RTOMillis * 1e6), Report: body})
	}
	if err != nil {
		r.StoreError = err.Error()
	}
}

// storedJSON encodes the report, leaving out details until it fits what the cluster stores.
func storedJSON(r *Report) ([]byte, error) {
	c := *r
	shrink := []func(){
		func() { c.Steps = nil },
		func() {
			if c.Load != nil {
				l := *c.Load
				l.Violations = l.Violations[:min(10, len(l.Violations))]
				c.Load = &l
			}
		},
		func() { c.Failovers = nil },
		func() { c.Checks = nil },
	}
	for i := 0; ; i++ {
		b, err := json.Marshal(c)
		if err != nil || len(b) <= maxStoredReport {
			return b, err
		}
		if i == len(shrink) {
			return nil, fmt.Errorf("the report is %d bytes even without its details", len(b))
		}
		shrink[i]()
	}
}

// run runs a drill's body under load (unless o.NoLoad), then checks the load's history and the
// replicas, lets after add the drill's own checks (h is nil without load), and stores the report.
func (e *Env) run(ctx context.Context, r *Report, o Options, body func(l *load) error, after func(h *workload.History)) *Report {
	l, err := e.begin(ctx, r, o)
	if err == nil {
		err = body(l)
	}
	if err == nil {
		// Writes after the last disruption show the cluster recovered from it.
		err = e.settle(ctx, l, o.Settle)
	}
	var h *workload.History
	switch {
	case l != nil && err != nil:
		l.stop()
	case l != nil:
		e.step(r, "load stopped after %d acknowledged casts; checking every node", l.Acked())
		h = e.checkLoad(ctx, r, l)
	}
	if after != nil {
		after(h)
	}
	if err == nil {
		e.agreement(ctx, r, convergenceWait)
	}
	r.finish(err)
	e.store(ctx, r)
	if e.Logf != nil {
		e.Logf("%s", r.Verdict)
	}
	return r
}

// begin starts the load and lets it run for a while, unless o.NoLoad.
func (e *Env) begin(ctx context.Context, r *Report, o Options) (*load, error) {
	if o.NoLoad {
		e.step(r, "no load: recovery times are measured with linearizable reads; RPO is not checked")
		return nil, nil
	}
	l, err := e.startLoad(ctx, o)
	if err != nil {
		return nil, err
	}
	e.step(r, "synthetic load started: %d casts at once, %d ballots already in the box", o.Concurrency, len(l.baseline))
	if err := l.waitProgress(ctx, 20, convergenceWait); err != nil {
		return l, fmt.Errorf("the load does not progress: %w", err)
	}
	return l, nil
}

// NewEnv opens the clients of the cluster folder dir: operator and organizer with the default
// retries, and the app client of the load with short retry pauses, so that the recovery time
// measured is the cluster's, not the client's backoff.
func NewEnv(dir string, procs recovery.Processes, launch func(string) (recovery.Processes, error)) (*Env, error) {
	e := &Env{Dir: dir, Procs: procs, Launch: launch}
	var err error
	roles := []struct {
		role string
		c    **client.Client
		fast bool
	}{{"operator", &e.Operator, false}, {"organizer", &e.Organizer, false}, {"app", &e.App, true}}
	for _, r := range roles {
		cfg, file, lerr := client.LoadClusterDir(dir, r.role)
		if lerr != nil {
			e.Close()
			return nil, lerr
		}
		e.File = file
		if r.fast {
			cfg.Backoff, cfg.MaxAttempts, cfg.RequestTimeout = 25*time.Millisecond, 400, 2*time.Second
		}
		if *r.c, err = client.New(cfg); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// Close closes the clients.
func (e *Env) Close() {
	for _, c := range []*client.Client{e.Operator, e.Organizer, e.App} {
		if c != nil {
			_ = c.Close()
		}
	}
}
