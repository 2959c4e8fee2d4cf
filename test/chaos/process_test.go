package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/chaos"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/linearize"
)

// Scenarios on real node processes started with `urne dev`, for what only a process can show:
// SIGKILL, and crashes (os.Exit) at failpoints. The binary is built with -tags failpoints.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// failpointBinary builds urne with failpoints once per test run.
func failpointBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "urne-chaos-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "urne")
		out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", binPath, "../../cmd/urne").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build -tags failpoints: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// procCluster is a cluster of `urne server` processes with chaos enabled.
type procCluster struct {
	t    *testing.T
	bin  string
	dir  string
	file *client.ClusterFile
}

// startProcs writes a chaos-enabled cluster folder, lets configure change each node's file,
// and starts every node.
func startProcs(t *testing.T, topology string, configure func(*node.Config)) *procCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process scenario: skipped with -short")
	}
	p := &procCluster{t: t, bin: failpointBinary(t), dir: filepath.Join(t.TempDir(), "cluster")}
	file, err := cluster.Init(cluster.Options{ElectionID: "test-election", Topology: topology, Out: p.dir,
		Host: harness.LoopbackHost(), Profile: node.ProfileLAN, Chaos: true})
	if err != nil {
		t.Fatal(err)
	}
	p.file = file
	for _, n := range file.Nodes {
		path := cluster.NodeConfigPath(p.dir, n.ID)
		cfg, err := node.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if configure != nil {
			configure(&cfg)
		}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if out, err := p.urne(nil, "dev", "down", "--dir", p.dir, "--grace", "3s"); err != nil {
			t.Logf("dev down: %v\n%s", err, out)
		}
	})
	p.must("dev", "up", "--dir", p.dir)
	return p
}

// urne runs the binary with extra environment variables.
func (p *procCluster) urne(env []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (p *procCluster) must(args ...string) {
	p.t.Helper()
	if out, err := p.urne(nil, args...); err != nil {
		p.t.Fatalf("urne %v: %v\n%s", args, err, out)
	}
}

func (p *procCluster) client(role string) *client.Client {
	p.t.Helper()
	cfg, _, err := client.LoadClusterDir(p.dir, role)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return c
}

// leader asks the cluster which node leads.
func (p *procCluster) leader(c *client.Client) string {
	p.t.Helper()
	var id string
	harness.Poll(p.t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l, err := c.Leader(ctx)
		id = l.ID
		return err
	})
	return id
}

// running reports whether node id's process is alive.
func (p *procCluster) running(id string) bool {
	out, err := p.urne(nil, "dev", "ps", "--dir", p.dir, "-o", "json")
	if err != nil {
		return false
	}
	var r struct {
		Nodes []struct {
			ID      string `json:"id"`
			Running bool   `json:"running"`
		} `json:"nodes"`
	}
	if json.Unmarshal(out, &r) != nil {
		return false
	}
	for _, n := range r.Nodes {
		if n.ID == id {
			return n.Running
		}
	}
	return false
}

// procRun is the load and history of a process scenario.
type procRun struct {
	p     *procCluster
	h     *linearize.History
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	op    *client.Client
	start time.Time
}

// load opens the election and starts the workload.
func (p *procCluster) load(voters int) *procRun {
	p.t.Helper()
	ctx := harness.Context(p.t, 2*time.Minute)
	org := p.client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Chaos"); err != nil {
		p.t.Fatal(err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", voters))); err != nil {
		p.t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		p.t.Fatal(err)
	}
	r := &procRun{p: p, h: linearize.NewHistory(), stop: make(chan struct{}), op: p.client("operator"), start: time.Now()}
	w := linearize.Workload{Voters: voters, VoterPrefix: "v", Workers: 12, Endpoints: p.file.Endpoints(), Stop: r.stop}
	app := p.client("app")
	r.wg.Go(func() { _ = w.Run(context.Background(), app, r.h) })
	p.t.Cleanup(r.stopLoad) // before the nodes are stopped, even when the test failed
	r.waitAcked(20, time.Minute)
	return r
}

func (r *procRun) stopLoad() { r.once.Do(func() { close(r.stop); r.wg.Wait() }) }

func (r *procRun) waitAcked(n int, timeout time.Duration) {
	r.p.t.Helper()
	from := r.h.Acked()
	harness.Poll(r.p.t, timeout, func() error {
		if got := r.h.Acked() - from; got < n {
			return fmt.Errorf("%d of %d more casts acknowledged", got, n)
		}
		return nil
	})
}

// fault runs one urne command as a recorded fault.
func (r *procRun) fault(env []string, args ...string) {
	r.p.t.Helper()
	r.p.t.Logf("fault: urne %v %v", env, args)
	var out []byte
	err := linearize.Do(r.h, linearize.KindFault, fmt.Sprint(env, args), func() error {
		var err error
		out, err = r.p.urne(env, args...)
		return err
	})
	if err != nil {
		r.p.t.Fatalf("urne %v: %v\n%s", args, err, out)
	}
}

// finish stops the load, restarts every node, heals, and checks the history.
func (r *procRun) finish(name string) {
	t := r.p.t
	t.Helper()
	r.stopLoad()
	// Heal what runs first (a down node refuses nothing and is started next), then heal all.
	_, _ = r.p.urne(nil, "chaos", "heal", "--cluster", r.p.dir)
	r.p.must("dev", "up", "--dir", r.p.dir)
	r.fault(nil, "chaos", "heal", "--cluster", r.p.dir)
	ctx := harness.Context(t, 3*time.Minute)
	ops := r.h.Ops()
	replicas, err := linearize.Collect(ctx, r.op, r.p.file.Endpoints(), ops)
	if err != nil {
		t.Fatalf("final state: %v", err)
	}
	report := linearize.Check(ops, replicas, linearize.Options{})
	chaos.RecordResult(t, name, report, time.Since(r.start))
	if !report.OK() {
		chaos.SaveHistory(t, name, ops)
		t.Fatalf("scenario %s: %s", name, report)
	}
	t.Logf("scenario %s: %s", name, report)
}

func TestProcessLeaderKillLoop(t *testing.T) {
	chaos.RecordFailure(t, "process-leader-sigkill-loop", time.Now())
	p := startProcs(t, "2+2+1", nil)
	r := p.load(20000)
	for i := range 3 * int(chaos.Scale()) {
		leader := p.leader(r.op)
		r.fault(nil, "dev", "kill", "--dir", p.dir, "--node", leader)
		r.waitAcked(50, time.Minute)
		if i%2 == 0 {
			r.fault(nil, "dev", "start", "--dir", p.dir, "--node", leader)
		} else {
			// Also through `urne chaos kill`, on the new leader while the old one is down.
			r.fault(nil, "dev", "start", "--dir", p.dir, "--node", leader)
			next := p.leader(r.op)
			r.fault(nil, "chaos", "kill", "--cluster", p.dir, "--node", next)
			harness.Poll(t, 30*time.Second, func() error {
				if p.running(next) {
					return fmt.Errorf("%s still runs after chaos kill", next)
				}
				return nil
			})
			r.waitAcked(50, time.Minute)
			r.fault(nil, "dev", "start", "--dir", p.dir, "--node", next)
		}
		r.waitAcked(50, time.Minute)
	}
	r.finish("process-leader-sigkill-loop")
}

// nodeLog returns what node id's processes wrote to their log.
func (p *procCluster) nodeLog(id string) string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "nodes", id, "node.log"))
	return string(b)
}

// follower returns a running datacenter node that does not lead.
func (p *procCluster) follower(leader string) string {
	for _, n := range p.file.Nodes {
		if n.ID != leader && n.Role != "witness" && p.running(n.ID) {
			return n.ID
		}
	}
	p.t.Fatal("no datacenter follower runs")
	return ""
}

// waitCrash waits until node id's process has ended at the failpoint.
func (p *procCluster) waitCrash(id, point string, timeout time.Duration) {
	p.t.Helper()
	harness.Poll(p.t, timeout, func() error {
		if p.running(id) {
			return fmt.Errorf("%s still runs with %s armed", id, point)
		}
		return nil
	})
	if !bytes.Contains([]byte(p.nodeLog(id)), []byte("failpoint "+point)) {
		p.t.Fatalf("%s ended, but not at failpoint %s:\n%s", id, point, tail(p.nodeLog(id), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestProcessCrashAtEachFailpoint crashes a node (the leader or a follower, in turn) at each
// failpoint while the load runs, restarts it, and checks the history once all have run.
func TestProcessCrashAtEachFailpoint(t *testing.T) {
	chaos.Full(t)
	chaos.RecordFailure(t, "process-crash-at-each-failpoint", time.Now())
	small := func(c *node.Config) { c.SnapshotThreshold, c.TrailingLogs, c.SnapshotInterval = 256, 128, "1s" }
	p := startProcs(t, "2+2+1", small)
	r := p.load(20000)
	live := []struct{ point, spec string }{
		{"raft/before-append", "exit"}, {"raft/after-append", "exit"},
		{"fsm/before-apply", "exit"}, {"fsm/commit", "exit"}, {"fsm/commit", "eio"}, {"fsm/after-apply", "exit"},
		{"snapshot/persist", "exit"}, {"snapshot/after-persist", "exit"},
	}
	for i, fp := range live {
		target := p.leader(r.op)
		if i%2 == 1 {
			target = p.follower(target)
		}
		r.fault(nil, "chaos", "failpoint", "--cluster", p.dir, "--node", target, fp.point+"="+fp.spec)
		p.waitCrash(target, fp.point, time.Minute)
		r.waitAcked(50, time.Minute)
		r.fault(nil, "dev", "start", "--dir", p.dir, "--node", target)
		r.waitAcked(50, time.Minute)
	}
	// Restore points: a node far behind installs the leader's snapshot when it comes back.
	for _, point := range []string{"snapshot/before-restore", "snapshot/after-restore"} {
		target := p.follower(p.leader(r.op))
		r.fault(nil, "dev", "kill", "--dir", p.dir, "--node", target)
		r.waitAcked(1000, 2*time.Minute)
		env := []string{"URNE_FAILPOINTS=" + point + "=exit"}
		_ = linearize.Do(r.h, linearize.KindFault, "start "+target+" with "+env[0], func() error {
			_, err := p.urne(env, "dev", "start", "--dir", p.dir, "--node", target)
			return err // the node may die before it answers: that is the point
		})
		p.waitCrash(target, point, time.Minute)
		r.fault(nil, "dev", "start", "--dir", p.dir, "--node", target)
		r.waitAcked(50, time.Minute)
	}
	r.finish("process-crash-at-each-failpoint")
}

// applied reads every node's applied index; a node that does not answer is left out.
func (p *procCluster) applied(c *client.Client) map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range p.file.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if info, err := c.Node(ctx, n.GRPC); err == nil {
			out[n.ID] = info.GetAppliedIndex()
		}
		cancel()
	}
	return out
}

// stalled lets the load acknowledge n more casts and returns the nodes that applied nothing.
func (r *procRun) stalled(n int) []string {
	before := r.p.applied(r.op)
	r.waitAcked(n, 2*time.Minute)
	after := r.p.applied(r.op)
	var out []string
	for id, b := range before {
		if after[id] == b {
			out = append(out, id)
		}
	}
	return out
}

// TestProcessChaosCommands drives the faults with `urne chaos` on node processes: the nodes
// cut their own connections.
func TestProcessChaosCommands(t *testing.T) {
	chaos.Full(t)
	chaos.RecordFailure(t, "process-chaos-commands", time.Now())
	p := startProcs(t, "2+2+1", nil)
	r := p.load(20000)
	r.fault(nil, "chaos", "partition", "dc1", "dc2", "--cluster", p.dir)
	if s := r.stalled(200); len(s) == 0 {
		t.Fatalf("every node kept applying while dc1 was cut from dc2: the partition did not take")
	}
	r.fault(nil, "chaos", "heal", "--cluster", p.dir)
	r.fault(nil, "chaos", "isolate", "wit-a", "--cluster", p.dir)
	if s := r.stalled(200); len(s) != 1 || s[0] != "wit-a" {
		t.Fatalf("nodes %v stalled while the witness was isolated, want wit-a alone", s)
	}
	r.fault(nil, "chaos", "heal", "--cluster", p.dir)
	r.fault(nil, "chaos", "delay", "--from", "dc1", "--to", "dc2", "--by", "30ms", "--both", "--cluster", p.dir)
	r.waitAcked(100, time.Minute)
	leader := p.leader(r.op)
	r.fault(nil, "chaos", "block", "--from", leader, "--to", p.follower(leader), "--cluster", p.dir)
	r.waitAcked(100, time.Minute)
	out, err := p.urne(nil, "chaos", "list", "--cluster", p.dir)
	if err != nil || !bytes.Contains(out, []byte("delay")) || !bytes.Contains(out, []byte("block "+leader)) {
		t.Fatalf("chaos list: %v\n%s", err, out)
	}
	r.finish("process-chaos-commands")
}
