// Package harness owns the in-process test cluster: real nodes on loopback, each with its own
// keys, certificates and data directory, and a fault-injecting network between them.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/faultnet"
	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Cluster is a set of in-process nodes built from a real cluster folder.
type Cluster struct {
	T    testing.TB
	Dir  string
	File *client.ClusterFile
	Net  *faultnet.Network
	// Configure, when set, changes a node's configuration before it starts (delivery
	// providers, hash costs); Options changes what New is given (clock, envelope key).
	Configure func(id string, cfg *node.Config)
	Options   func(id string, opts *node.Options)

	mu    sync.Mutex
	nodes map[string]*node.Node
	logs  map[string]*syncBuffer
}

// New writes a cluster folder for topology (e.g. "3", "2+2+1") and starts every node.
// Everything is stopped when the test ends.
func New(t testing.TB, topology string) *Cluster {
	t.Helper()
	c := Prepare(t, topology)
	for _, n := range c.File.Nodes {
		c.Start(n.ID)
	}
	c.WaitLeader()
	return c
}

// Prepare writes the cluster folder without starting any node.
func Prepare(t testing.TB, topology string) *Cluster {
	t.Helper()
	dir := t.TempDir()
	file, err := cluster.Init(cluster.Options{ElectionID: "test-election", Topology: topology,
		Out: filepath.Join(dir, "cluster"), Host: LoopbackHost(), Profile: node.ProfileLAN})
	if err != nil {
		t.Fatalf("cluster init: %v", err)
	}
	c := &Cluster{T: t, Dir: filepath.Join(dir, "cluster"), File: file, Net: faultnet.New(),
		nodes: map[string]*node.Node{}, logs: map[string]*syncBuffer{}}
	for _, n := range file.Nodes {
		c.Net.Register(n.ID, n.Raft)
		c.Net.Register(n.ID, n.GRPC)
	}
	t.Cleanup(c.StopAll)
	return c
}

// LoopbackHost returns a random address of 127.0.0.0/8 other than 127.0.0.1: each test
// cluster gets a port space of its own, so clusters of test packages running at the same time
// never draw the same address, and outgoing connections (whose source is 127.0.0.1) never take
// a port of a restarting node.
func LoopbackHost() string {
	return fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(254), mrand.IntN(256), 1+mrand.IntN(254))
}

// Config returns the configuration of node id as written on disk.
func (c *Cluster) Config(id string) node.Config {
	c.T.Helper()
	cfg, err := node.LoadConfig(cluster.NodeConfigPath(c.Dir, id))
	if err != nil {
		c.T.Fatalf("config of %s: %v", id, err)
	}
	return cfg
}

// TryStart starts node id and returns the error New or Start gave.
func (c *Cluster) TryStart(id string) error {
	cfg := c.Config(id)
	if c.Configure != nil {
		c.Configure(id, &cfg)
	}
	return c.TryStartConfig(cfg)
}

// TryStartConfig starts a node from cfg (which may differ from the file on disk).
func (c *Cluster) TryStartConfig(cfg node.Config) error {
	id := cfg.NodeID
	c.mu.Lock()
	buf, ok := c.logs[id]
	if !ok {
		buf = &syncBuffer{}
		c.logs[id] = buf
	}
	c.mu.Unlock()
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(buf, testWriter{c.T, id}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts := node.Options{Logger: logger, Dialer: c.Net.Dialer(id),
		WrapListener: func(ln net.Listener) net.Listener { return c.Net.Listener(id, ln) }}
	if c.Options != nil {
		c.Options(id, &opts)
	}
	n, err := node.New(cfg, opts)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return nil
}

// Start starts node id or fails the test.
func (c *Cluster) Start(id string) {
	c.T.Helper()
	if err := c.TryStart(id); err != nil {
		c.T.Fatalf("start %s: %v", id, err)
	}
}

// Stop shuts node id down; its data stays for a restart.
func (c *Cluster) Stop(id string) {
	c.T.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	if err := n.Shutdown(); err != nil {
		c.T.Logf("stop %s: %v", id, err)
	}
}

// StopAll stops every running node.
func (c *Cluster) StopAll() {
	for _, id := range c.Running() {
		c.Stop(id)
	}
}

// Running lists the ids of running nodes, sorted.
func (c *Cluster) Running() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id := range c.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Node returns running node id or nil.
func (c *Cluster) Node(id string) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Log returns what node id has logged so far (all its runs).
func (c *Cluster) Log(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.logs[id]; ok {
		return b.String()
	}
	return ""
}

// DataDir returns the data directory of node id.
func (c *Cluster) DataDir(id string) string { return c.Config(id).DataDir }

// WaitLeader waits until every running node agrees on one running leader, and returns its id.
func (c *Cluster) WaitLeader() string {
	c.T.Helper()
	var leader string
	// Generous: under the race detector on a loaded machine an election can take seconds.
	Poll(c.T, 60*time.Second, func() error {
		leader = ""
		for _, id := range c.Running() {
			n := c.Node(id)
			if n == nil {
				return fmt.Errorf("%s stopped", id)
			}
			_, l := n.Raft().LeaderWithID()
			if l == "" {
				return fmt.Errorf("%s knows no leader", id)
			}
			if leader != "" && string(l) != leader {
				return fmt.Errorf("%s follows %s, others %s", id, l, leader)
			}
			leader = string(l)
		}
		if c.Node(leader) == nil {
			return fmt.Errorf("leader %s is not running", leader)
		}
		if c.Node(leader).Raft().State() != raft.Leader {
			return fmt.Errorf("%s is not leader yet", leader)
		}
		return nil
	})
	return leader
}

// WaitConverged waits until every running node has applied the same index, and returns it.
func (c *Cluster) WaitConverged() uint64 {
	c.T.Helper()
	var index uint64
	Poll(c.T, 30*time.Second, func() error {
		index = 0
		for _, id := range c.Running() {
			n := c.Node(id)
			if n == nil {
				return fmt.Errorf("%s stopped", id)
			}
			ai := n.FSM().AppliedIndex()
			if index != 0 && ai != index {
				return fmt.Errorf("%s applied %d, another %d", id, ai, index)
			}
			index = ai
		}
		return nil
	})
	return index
}

// Digests returns every running node's state digest; call after WaitConverged.
func (c *Cluster) Digests() map[string]string {
	c.T.Helper()
	out := map[string]string{}
	for _, id := range c.Running() {
		index, d, err := c.Node(id).FSM().Digest()
		if err != nil {
			c.T.Fatalf("digest of %s: %v", id, err)
		}
		out[id] = fmt.Sprintf("%d/%x", index, d)
	}
	return out
}

// AssertSameState fails the test unless every running node comes to hold the same state.
// Entries may still arrive (integrity reports, audits of connections), so a node that
// applied one more than another between two reads is asked again, for up to 30 s.
func (c *Cluster) AssertSameState() {
	c.T.Helper()
	Poll(c.T, 30*time.Second, func() error {
		c.WaitConverged()
		var first, firstID string
		for id, d := range c.Digests() {
			if first == "" {
				first, firstID = d, id
				continue
			}
			if d != first {
				return fmt.Errorf("state of %s (%s) differs from %s (%s)", id, d, firstID, first)
			}
		}
		return nil
	})
}

// Client returns a client with the certificate of role (operator, organizer, app), talking to
// the given nodes, or to every node when none is named. It is closed when the test ends.
func (c *Cluster) Client(role string, ids ...string) *client.Client {
	c.T.Helper()
	cfg, file, err := client.LoadClusterDir(c.Dir, role)
	if err != nil {
		c.T.Fatalf("client config: %v", err)
	}
	if len(ids) > 0 {
		cfg.Endpoints = nil
		for _, id := range ids {
			n, _ := file.Node(id)
			cfg.Endpoints = append(cfg.Endpoints, n.GRPC)
		}
	}
	cl, err := client.New(cfg)
	if err != nil {
		c.T.Fatalf("client: %v", err)
	}
	c.T.Cleanup(func() { cl.Close() })
	return cl
}

// IssueClient writes a client certificate for role into the cluster folder, signed by the
// folder's CA (cluster init issues operator, organizer and app only), so Client(role) works.
func (c *Cluster) IssueClient(role string) {
	c.T.Helper()
	certPEM, err := os.ReadFile(filepath.Join(c.Dir, client.CAFile))
	if err != nil {
		c.T.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(c.Dir, "ca", "ca.key"))
	if err != nil {
		c.T.Fatal(err)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		c.T.Fatal(err)
	}
	crt, key, err := ca.IssueClient(role)
	if err != nil {
		c.T.Fatal(err)
	}
	for name, data := range map[string][]byte{role + ".crt": crt, role + ".key": key} {
		if err := pki.WriteFile(filepath.Join(c.Dir, client.ClientsDir, name), data, 0o600); err != nil {
			c.T.Fatal(err)
		}
	}
}

// GRPC returns the gRPC address of node id.
func (c *Cluster) GRPC(id string) string {
	n, _ := c.File.Node(id)
	return n.GRPC
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Poll calls f until it returns nil, failing the test with f's last error after timeout.
func Poll(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// ScanFiles returns the files under dir whose raw bytes contain needle.
func ScanFiles(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	return hits
}

// Voters makes n voters with ids prefix000001...
func Voters(prefix string, n int) []*urnepb.Voter {
	out := make([]*urnepb.Voter, n)
	for i := range out {
		id := fmt.Sprintf("%s%06d", prefix, i+1)
		out[i] = &urnepb.Voter{VoterId: id, Name: "Name " + id, Email: id + "@example.org"}
	}
	return out
}

// Slice feeds a slice to client.ImportVoters.
func Slice(voters []*urnepb.Voter) func() (*urnepb.Voter, error) {
	i := 0
	return func() (*urnepb.Voter, error) {
		if i == len(voters) {
			return nil, io.EOF
		}
		i++
		return voters[i-1], nil
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testWriter sends node logs to the test log when URNE_TEST_LOGS is set.
type testWriter struct {
	t  testing.TB
	id string
}

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("URNE_TEST_LOGS") != "" {
		w.t.Logf("%s: %s", w.id, bytes.TrimSpace(p))
	}
	return len(p), nil
}
