// Package chaos owns the fault scenarios of the cluster: each one runs the linearize workload
// against a cluster (in-process nodes with a fault-injecting network, real processes, or
// Docker containers), injects its faults, heals, and checks the history and the final state
// of every replica. Results are appended to the file URNE_CHAOS_RESULTS names, from which
// `make chaos` writes docs/RELIABILITY.md.
package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/internal/failpoint"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/linearize"
)

// Environment variables read by the scenarios.
const (
	// EnvResults names a file each scenario run appends its Result to, as one JSON line.
	EnvResults = "URNE_CHAOS_RESULTS"
	// EnvScale multiplies how long each fault lasts (default 1: the short version CI runs).
	EnvScale = "URNE_CHAOS_SCALE"
	// EnvArtifacts names a folder where the history of a run that failed its check is saved.
	EnvArtifacts = "URNE_CHAOS_ARTIFACTS"
	// EnvFull runs every scenario; without it (CI's `make test`) only the short set runs.
	EnvFull = "URNE_CHAOS_FULL"
)

// Full skips a scenario outside the full set (make chaos), to keep CI short.
func Full(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvFull) == "" {
		t.Skipf("long chaos scenario: run by `make chaos` (set %s=1 to run it here)", EnvFull)
	}
}

// Scale returns the duration multiplier of the faults: URNE_CHAOS_SCALE, at least 1.
func Scale() time.Duration {
	if v, err := strconv.Atoi(os.Getenv(EnvScale)); err == nil && v > 1 {
		return time.Duration(v)
	}
	return 1
}

// Options describe the cluster and the load of a scenario.
type Options struct {
	Topology string
	Voters   int
	Workers  int
	// Configure changes every node's configuration before the first start.
	Configure func(*node.Config)
}

// Env is what a scenario's script works with while the load runs.
type Env struct {
	T  *testing.T
	C  *harness.Cluster
	H  *linearize.History
	Op *client.Client
}

// Fault records one fault (or its lifting) in the history and runs it.
func (e *Env) Fault(action string, fn func()) {
	e.T.Logf("fault: %s", action)
	_ = linearize.Do(e.H, linearize.KindFault, action, func() error { fn(); return nil })
}

// Membership runs and records a change of configuration or leadership.
func (e *Env) Membership(action string, fn func() error) error {
	e.T.Logf("membership: %s", action)
	return linearize.Do(e.H, linearize.KindMembership, action, fn)
}

// WaitAcked waits until the load has had n more casts acknowledged, failing the test if the
// cluster does not get there within timeout: it should be available.
func (e *Env) WaitAcked(n int, timeout time.Duration) {
	e.T.Helper()
	from := e.H.Acked()
	harness.Poll(e.T, timeout, func() error {
		if got := e.H.Acked() - from; got < n {
			return fmt.Errorf("%d of %d more casts acknowledged", got, n)
		}
		return nil
	})
}

// Hold lets the load run for d under the current faults.
func (e *Env) Hold(d time.Duration) { time.Sleep(d * Scale()) }

// Result is one run of one scenario.
type Result struct {
	Scenario string `json:"scenario"`
	// Error says why a run ended before its history was checked (the cluster did not
	// recover in time, a fault could not be injected); such a run counts as failed.
	Error      string    `json:"error,omitempty"`
	Ops        int       `json:"ops"`
	Acked      int       `json:"acked"`
	Failed     int       `json:"failed"`
	Unknown    int       `json:"unknown"`
	Violations int       `json:"violations"`
	Checks     []string  `json:"checks,omitempty"`
	Seconds    float64   `json:"seconds"`
	At         time.Time `json:"at"`
}

// Run starts a cluster, opens an election, runs the load while script injects its faults,
// heals every fault, restarts stopped nodes, and checks the history and every replica.
func Run(t *testing.T, name string, opts Options, script func(e *Env)) {
	start := time.Now()
	RecordFailure(t, name, start)
	opts = opts.withDefaults()
	e := startEnv(t, opts)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	w := linearize.Workload{Voters: opts.Voters, VoterPrefix: "v", Workers: opts.Workers, Endpoints: e.C.Endpoints(), Stop: stop}
	app := e.C.Client("app")
	wg.Go(func() { _ = w.Run(context.Background(), app, e.H) })
	var once sync.Once
	stopLoad := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopLoad() // a script that fails the test must not leave the load running
	e.WaitAcked(20, time.Minute)
	script(e)
	stopLoad()
	heal(e)
	probe(e, app, opts.Voters+1)
	report := check(e)
	RecordResult(t, name, report, time.Since(start))
	if !report.OK() {
		SaveHistory(t, name, e.H.Ops())
		t.Fatalf("scenario %s: %s", name, report)
	}
	t.Logf("scenario %s: %s", name, report)
}

func (o Options) withDefaults() Options {
	if o.Voters == 0 {
		o.Voters = 5000
	}
	if o.Workers == 0 {
		o.Workers = 12
	}
	return o
}

func startEnv(t *testing.T, opts Options) *Env {
	t.Helper()
	c := harness.Prepare(t, opts.Topology)
	t.Cleanup(func() { saveLogs(t, c) })
	for _, id := range c.IDs() {
		if opts.Configure != nil {
			cfg := c.Config(id)
			opts.Configure(&cfg)
			writeConfig(t, c, cfg)
		}
		c.Start(id)
	}
	c.WaitLeader()
	e := &Env{T: t, C: c, H: linearize.NewHistory(), Op: c.Client("operator")}
	openElection(t, c, opts.Voters+1) // one more voter for the probe after healing
	return e
}

// writeConfig writes cfg over the node's config file, so restarts keep it.
func writeConfig(t *testing.T, c *harness.Cluster, cfg node.Config) {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cluster.NodeConfigPath(c.Dir, cfg.NodeID), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func openElection(t *testing.T, c *harness.Cluster, voters int) {
	t.Helper()
	ctx := harness.Context(t, 2*time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Chaos"); err != nil {
		t.Fatalf("create election: %v", err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", voters))); err != nil {
		t.Fatalf("import voters: %v", err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatalf("open election: %v", err)
	}
}

// heal lifts every network rule and failpoint and starts every stopped node.
func heal(e *Env) {
	e.Fault("heal: every rule lifted, every node started", func() {
		e.C.Net.Heal()
		failpoint.DisableAll()
		for _, id := range e.C.IDs() {
			if e.C.Node(id) == nil {
				e.C.Start(id)
			}
		}
	})
	e.C.WaitLeader()
}

// probe checks that the healed cluster takes a new cast, and records it.
func probe(e *Env, app *client.Client, voter int) {
	e.T.Helper()
	id := fmt.Sprintf("v%06d", voter)
	ballot := []byte("probe ballot after healing")
	sum := sha256.Sum256(ballot)
	request := client.NewRequestID()
	harness.Poll(e.T, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		op := linearize.Op{Client: -200, Kind: linearize.KindCast, Voter: id, Request: request, Ballot: sum[:], Call: e.H.Now()}
		resp, err := app.CastWithRequestID(ctx, request, id, ballot)
		op.Return = e.H.Now()
		if err != nil {
			op.Outcome, op.Err = linearize.Unknown, err.Error()
			e.H.Add(op)
			return fmt.Errorf("the healed cluster refused a cast: %w", err)
		}
		op.Outcome, op.Receipt, op.EmargedAt = linearize.OK, resp.GetReceipt().GetFingerprint(), resp.GetReceipt().GetEmargedAtUnixNano()
		op.Replayed = resp.GetReplayed()
		e.H.Add(op)
		return nil
	})
}

// check collects every replica once they converged and checks the history.
func check(e *Env) linearize.Report {
	e.T.Helper()
	ctx := harness.Context(e.T, 3*time.Minute)
	ops := e.H.Ops()
	replicas, err := linearize.Collect(ctx, e.Op, e.C.Endpoints(), ops)
	if err != nil {
		e.T.Fatalf("final state: %v", err)
	}
	return linearize.Check(ops, replicas, linearize.Options{})
}

// RecordFailure makes sure a run that fails before its check is recorded too.
func RecordFailure(t *testing.T, name string, start time.Time) {
	t.Cleanup(func() {
		path := os.Getenv(EnvResults)
		if path == "" || !t.Failed() || recorded(t) {
			return
		}
		res := Result{Scenario: name, Error: "the run failed before its history was checked (see the test log)",
			Seconds: time.Since(start).Seconds(), At: time.Now().UTC()}
		if err := AppendResult(path, res); err != nil {
			t.Logf("recording the failure: %v", err)
		}
	})
}

var (
	recordedMu sync.Mutex
	recordedBy = map[testing.TB]bool{}
)

func recorded(t testing.TB) bool {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	return recordedBy[t]
}

// RecordResult appends the result of a scenario run to URNE_CHAOS_RESULTS when set.
func RecordResult(t *testing.T, name string, r linearize.Report, d time.Duration) {
	path := os.Getenv(EnvResults)
	if path == "" {
		return
	}
	res := Result{Scenario: name, Ops: r.Tally.Ops, Acked: r.Tally.OK, Failed: r.Tally.Failed, Unknown: r.Tally.Unknown,
		Violations: len(r.Violations), Seconds: d.Seconds(), At: time.Now().UTC()}
	for _, v := range r.Violations {
		res.Checks = append(res.Checks, v.Check)
	}
	if err := AppendResult(path, res); err != nil {
		t.Errorf("recording the result: %v", err)
	}
	recordedMu.Lock()
	recordedBy[t] = true
	recordedMu.Unlock()
}

// AppendResult appends one result line to path.
func AppendResult(path string, res Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// saveLogs writes every node's log under URNE_CHAOS_ARTIFACTS when the test failed.
func saveLogs(t *testing.T, c *harness.Cluster) {
	dir := os.Getenv(EnvArtifacts)
	if !t.Failed() || dir == "" {
		return
	}
	stamp := time.Now().UTC().Format("20060102T150405")
	for _, id := range c.IDs() {
		path := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.log", t.Name(), stamp, id))
		if err := os.WriteFile(path, []byte(c.Log(id)), 0o644); err != nil {
			t.Logf("saving the log of %s: %v", id, err)
		}
	}
	t.Logf("node logs saved under %s", dir)
}

// SaveHistory writes the operations of a run under URNE_CHAOS_ARTIFACTS (or the test's
// temporary folder), for a failed check to be studied.
func SaveHistory(t *testing.T, name string, ops []linearize.Op) {
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name+"-"+time.Now().UTC().Format("20060102T150405")+".json")
	if err := linearize.Save(path, ops); err != nil {
		t.Logf("saving the history: %v", err)
		return
	}
	t.Logf("history saved to %s", path)
}
