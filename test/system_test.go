package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/test/harness"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// urneBinary returns the urne binary: URNE_BIN when set (make test sets it), else one built
// once for this test run.
func urneBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("URNE_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "urne-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "urne")
		out, err := exec.Command("go", "build", "-o", builtBin, "../cmd/urne").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// procCluster is a cluster of real urne processes started with `urne dev up`.
type procCluster struct {
	t   *testing.T
	bin string
	dir string
}

func startProcCluster(t *testing.T, topology string) *procCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process cluster: skipped with -short")
	}
	p := &procCluster{t: t, bin: urneBinary(t), dir: filepath.Join(t.TempDir(), "cluster")}
	t.Cleanup(func() {
		if out, err := p.run("dev", "down", "--dir", p.dir); err != nil {
			t.Logf("dev down: %v\n%s", err, out)
		}
		if t.Failed() {
			p.dumpLogs()
		}
	})
	if out, err := p.run("dev", "up", "--dir", p.dir, "--topology", topology, "--election", "system-test"); err != nil {
		t.Fatalf("dev up: %v\n%s", err, out)
	}
	return p
}

// pids reads `urne dev ps`: the pid of every node, 0 for one that does not run.
func (p *procCluster) pids() (map[string]int, error) {
	out, err := p.run("dev", "ps", "--dir", p.dir, "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("dev ps: %w\n%s", err, out)
	}
	var ps struct {
		Nodes []struct {
			ID  string `json:"id"`
			PID int    `json:"pid"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &ps); err != nil {
		return nil, fmt.Errorf("dev ps -o json: %w\n%s", err, out)
	}
	pids := map[string]int{}
	for _, n := range ps.Nodes {
		pids[n.ID] = n.PID
	}
	return pids, nil
}

func (p *procCluster) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (p *procCluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(p.dir, "nodes", "*", "node.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		p.t.Logf("==> %s (tail)\n%s", l, data)
	}
}

// logged counts the lines of every node's log that contain msg.
func (p *procCluster) logged(msg string) int {
	logs, _ := filepath.Glob(filepath.Join(p.dir, "nodes", "*", "node.log"))
	n := 0
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		n += bytes.Count(data, []byte(msg))
	}
	return n
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

func (p *procCluster) file() *client.ClusterFile {
	p.t.Helper()
	f, err := client.ReadClusterFile(filepath.Join(p.dir, client.ClusterFileName))
	if err != nil {
		p.t.Fatal(err)
	}
	return f
}

// leader asks the cluster which node leads.
func (p *procCluster) leader(ctx context.Context, c *client.Client) string {
	p.t.Helper()
	var id string
	harness.Poll(p.t, 30*time.Second, func() error {
		l, err := c.Leader(ctx)
		if err != nil {
			return err
		}
		id = l.ID
		return nil
	})
	return id
}

// TestSystemLeaderKillsDuringCasts SIGKILLs the leader process repeatedly while voters cast
// concurrently, checks that a follower stood for election as soon as the dead leader's port
// refused it, then proves from the load's own history that every acknowledged ballot is on
// every node and that no voter has two.
func TestSystemLeaderKillsDuringCasts(t *testing.T) {
	const standing = "standing for election now" // node/hangup.go
	p := startProcCluster(t, "2+2+1")
	ctx := harness.Context(t, 5*time.Minute)
	org := p.client("organizer")
	if _, err := org.CreateElection(ctx, "system-test", "System test"); err != nil {
		t.Fatal(err)
	}
	const voters = 20000
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", voters))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
	app := p.client("app")
	op := p.client("operator")
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var acked atomic.Int64
	progress := func(s workload.Stats) { acked.Store(int64(s.Acked)) }
	// waitProgress lets the load acknowledge more casts, so every kill lands on a busy cluster.
	waitProgress := func() {
		from := acked.Load()
		harness.Poll(t, time.Minute, func() error {
			if acked.Load() < from+100 {
				return fmt.Errorf("load stalled at %d acknowledged casts", acked.Load())
			}
			return nil
		})
	}
	var hist *workload.History
	var loadErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		hist, loadErr = workload.Run(loadCtx, app, workload.Config{Voters: voters, VoterPrefix: "v",
			Concurrency: 16, Duration: 3 * time.Minute, BallotSize: 256}, progress)
	}()
	kills := 3
	if runtime.NumCPU() > 2 {
		kills = 5
	}
	for i := 0; i < kills; i++ {
		waitProgress()
		leader := p.leader(ctx, op)
		stood := p.logged(standing)
		t.Logf("kill %d: SIGKILL leader %s", i+1, leader)
		if out, err := p.run("dev", "kill", "--dir", p.dir, "--node", leader); err != nil {
			t.Fatalf("dev kill: %v\n%s", err, out)
		}
		harness.Poll(t, 30*time.Second, func() error {
			l, err := op.Leader(ctx)
			if err != nil {
				return err
			}
			if l.ID == leader {
				return fmt.Errorf("old leader %s still reported", leader)
			}
			return nil
		})
		if p.logged(standing) == stood {
			t.Fatalf("kill %d: a new leader was elected, but no follower stood at once when %s's process died", i+1, leader)
		}
		if out, err := p.run("dev", "start", "--dir", p.dir, "--node", leader); err != nil {
			t.Fatalf("dev start: %v\n%s", err, out)
		}
	}
	waitProgress()
	stopLoad()
	<-done
	if loadErr != nil && hist == nil {
		t.Fatalf("workload: %v", loadErr)
	}
	st := hist.Stats()
	t.Logf("load: %d acknowledged, %d failed, %d unknown", st.Acked, st.Failed, st.Unknown)
	if st.Acked == 0 {
		t.Fatalf("no cast was acknowledged")
	}
	if err := workload.WaitConverged(ctx, op, p.file().Endpoints()); err != nil {
		t.Fatal(err)
	}
	report, err := hist.Verify(ctx, op, p.file().Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("verification failed:\n%s", report)
	}
}

// TestSystemStatusJSON checks `urne status -o json` prints one JSON document naming every node.
func TestSystemStatusJSON(t *testing.T) {
	p := startProcCluster(t, "3")
	out, err := p.run("status", "--cluster", p.dir, "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("status -o json printed more than one document:\n%s", out)
	}
	for _, id := range []string{"dc1-a", "dc1-b", "dc1-c"} {
		if !bytes.Contains(out, []byte(id)) {
			t.Fatalf("status does not name %s:\n%s", id, out)
		}
	}
}
