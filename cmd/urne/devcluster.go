package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urne-vote/urne/client"
)

// Files a local node process leaves in its folder.
const (
	nodeLogFile = "node.log"
	nodePIDFile = "node.pid"
)

// Timing of local clusters.
const (
	// stopGrace is how long a node gets to shut down after SIGTERM before SIGKILL.
	stopGrace = 10 * time.Second
	// pollInterval is the pause between two looks at processes or nodes.
	pollInterval = 50 * time.Millisecond
	// logTailLines of a node's log are quoted when it dies while starting.
	logTailLines = 15
)

// errNodeExited is returned when a node process ends while it is waited for.
var errNodeExited = errors.New("node process exited")

// devCluster runs the nodes of a cluster folder as local processes: one `urne server` per
// node, in its own process group, with its log and pid file in its node folder. It is shared
// by `urne dev`, `urne demo` and, through the binary, the system tests.
type devCluster struct {
	dir  string // absolute
	file *client.ClusterFile
	exe  string // the urne binary the nodes run

	mu       sync.Mutex
	children map[string]*child // processes this process started and reaps
}

// child is a node process started by this process.
type child struct {
	pid    int
	exited chan struct{}
}

// openDevCluster reads the cluster folder at dir. exe is the binary to run the nodes with;
// empty means this executable.
func openDevCluster(dir, exe string) (*devCluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	file, err := client.ReadClusterFile(filepath.Join(abs, client.ClusterFileName))
	if err != nil {
		return nil, err
	}
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding the urne binary to run nodes with: %w", err)
		}
	}
	return &devCluster{dir: abs, file: file, exe: exe, children: map[string]*child{}}, nil
}

// ids lists the node ids in cluster file order.
func (d *devCluster) ids() []string {
	ids := make([]string, len(d.file.Nodes))
	for i, n := range d.file.Nodes {
		ids[i] = n.ID
	}
	return ids
}

func (d *devCluster) node(id string) (client.ClusterNode, error) {
	n, ok := d.file.Node(id)
	if !ok {
		return n, fmt.Errorf("node %q is not in %s (nodes: %s)", id, d.dir, strings.Join(d.ids(), ", "))
	}
	return n, nil
}

func (d *devCluster) configPath(n client.ClusterNode) string {
	return filepath.Join(d.dir, filepath.FromSlash(n.Config))
}

func (d *devCluster) nodeFile(n client.ClusterNode, name string) string {
	return filepath.Join(filepath.Dir(d.configPath(n)), name)
}

// pid returns the pid of the node's running process, or 0 when it does not run. A pid file
// naming a dead process, or one that runs something else, counts as not running.
func (d *devCluster) pid(id string) int {
	n, err := d.node(id)
	if err != nil {
		return 0
	}
	d.mu.Lock()
	c := d.children[id]
	d.mu.Unlock()
	if c != nil {
		select {
		case <-c.exited:
			return 0
		default:
			return c.pid
		}
	}
	raw, err := os.ReadFile(d.nodeFile(n, nodePIDFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || !processRuns(pid, d.configPath(n)) {
		return 0
	}
	return pid
}

// start runs the node unless it already runs, and returns its pid and whether it was started.
func (d *devCluster) start(id string) (int, bool, error) {
	n, err := d.node(id)
	if err != nil {
		return 0, false, err
	}
	if pid := d.pid(id); pid != 0 {
		return pid, false, nil
	}
	logf, err := os.OpenFile(d.nodeFile(n, nodeLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, false, fmt.Errorf("node %s: %w", id, err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(d.exe, "server", "--config", d.configPath(n))
	cmd.Stdout, cmd.Stderr = logf, logf
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return 0, false, fmt.Errorf("starting node %s: %w", id, err)
	}
	c := &child{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }() // reaps the process so it never lingers as a zombie
	d.mu.Lock()
	d.children[id] = c
	d.mu.Unlock()
	if err := os.WriteFile(d.nodeFile(n, nodePIDFile), []byte(strconv.Itoa(c.pid)+"\n"), 0o644); err != nil {
		_ = signalProcess(c.pid, syscall.SIGKILL)
		return 0, false, fmt.Errorf("node %s: writing pid file: %w", id, err)
	}
	return c.pid, true, nil
}

// kill sends SIGKILL to the node and waits until it is gone. It returns the pid it killed,
// 0 when the node was not running.
func (d *devCluster) kill(id string) (int, error) {
	pid := d.pid(id)
	if pid == 0 {
		return 0, d.removePIDFile(id)
	}
	if err := signalProcess(pid, syscall.SIGKILL); err != nil {
		return pid, fmt.Errorf("killing node %s (pid %d): %w", id, pid, err)
	}
	if !d.waitGone(id, stopGrace) {
		return pid, fmt.Errorf("node %s (pid %d) still runs after SIGKILL", id, pid)
	}
	return pid, d.removePIDFile(id)
}

// stopResult says how one node was stopped.
type stopResult struct {
	ID     string `json:"id"`
	PID    int    `json:"pid,omitempty"`
	Result string `json:"result"` // "stopped", "killed" or "not running"
}

// stopAll sends SIGTERM to every running node, waits up to grace, SIGKILLs the rest and
// removes the pid files.
func (d *devCluster) stopAll(grace time.Duration) ([]stopResult, error) {
	results := make([]stopResult, 0, len(d.file.Nodes))
	var errs []error
	for _, id := range d.ids() {
		r := stopResult{ID: id, PID: d.pid(id), Result: "not running"}
		if r.PID != 0 {
			if err := signalProcess(r.PID, syscall.SIGTERM); err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", id, err))
			}
			r.Result = "stopped"
		}
		results = append(results, r)
	}
	deadline := time.Now().Add(grace)
	for i := range results {
		r := &results[i]
		if r.PID == 0 {
			continue
		}
		if !d.waitGone(r.ID, time.Until(deadline)) {
			r.Result = "killed"
			if _, err := d.kill(r.ID); err != nil {
				errs = append(errs, err)
			}
		}
		if err := d.removePIDFile(r.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}

// waitGone polls until the node's process has ended or the timeout passes.
func (d *devCluster) waitGone(id string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if d.pid(id) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

func (d *devCluster) removePIDFile(id string) error {
	n, err := d.node(id)
	if err != nil {
		return err
	}
	if err := os.Remove(d.nodeFile(n, nodePIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// exitedChild reports a node this process started that has ended since.
func (d *devCluster) exitedChild(ids []string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if c := d.children[id]; c != nil {
			select {
			case <-c.exited:
				return id, true
			default:
			}
		}
	}
	return "", false
}

// logPath is the log file of a node.
func (d *devCluster) logPath(id string) string {
	n, err := d.node(id)
	if err != nil {
		return ""
	}
	return d.nodeFile(n, nodeLogFile)
}

// logTail returns the last lines of a node's log, to explain why it stopped.
func (d *devCluster) logTail(id string) string {
	n, err := d.node(id)
	if err != nil {
		return ""
	}
	raw, err := os.ReadFile(d.nodeFile(n, nodeLogFile))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-logTailLines):], "\n")
}

// operatorClient returns a client with the operator certificate of the folder.
func (d *devCluster) operatorClient() (*client.Client, error) {
	cfg, _, err := client.LoadClusterDir(d.dir, roleOperator)
	if err != nil {
		return nil, err
	}
	cfg.MaxAttempts = 1
	return client.New(cfg)
}

// targets lists the nodes with their endpoints, for askNodes.
func (d *devCluster) targets(ids []string) []targetNode {
	out := make([]targetNode, 0, len(ids))
	for _, id := range ids {
		if n, err := d.node(id); err == nil {
			out = append(out, targetNode{ID: n.ID, Datacenter: n.Datacenter, Role: n.Role, Endpoint: n.GRPC})
		}
	}
	return out
}

// waitReady polls the nodes ids until each one answers and, with needLeader, all of them
// name the same leader. It fails early, quoting the log, when a node started here exits.
func (d *devCluster) waitReady(ctx context.Context, c *client.Client, ids []string, needLeader bool) (string, error) {
	var last []nodeAnswer
	for {
		if id, ok := d.exitedChild(ids); ok {
			return "", fmt.Errorf("%w: node %s stopped while starting; the end of %s:\n%s", errNodeExited, id,
				d.logPath(id), d.logTail(id))
		}
		last = askNodes(ctx, c, d.targets(ids))
		if leader, ok := ready(last, needLeader); ok {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for nodes %s: %w (%s)", strings.Join(ids, ", "), ctx.Err(), describeWaiting(last, needLeader))
		case <-time.After(pollInterval):
		}
	}
}

// ready reports whether every node answered and, with needLeader, names one leader.
func ready(answers []nodeAnswer, needLeader bool) (string, bool) {
	for _, a := range answers {
		if a.err != nil {
			return "", false
		}
	}
	leader := agreedLeader(answers)
	return leader, !needLeader || leader != ""
}

// describeWaiting says what a wait was still missing, for a timeout error.
func describeWaiting(answers []nodeAnswer, needLeader bool) string {
	var parts []string
	for _, a := range answers {
		if a.err != nil {
			parts = append(parts, fmt.Sprintf("%s does not answer: %v", a.node.ID, a.err))
		}
	}
	if len(parts) == 0 && needLeader {
		parts = append(parts, "the nodes do not agree on a leader")
	}
	return strings.Join(parts, "; ")
}
