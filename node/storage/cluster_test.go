package storage

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/urne-vote/urne/keyring"
)

// entryFSM is a tiny FSM that keeps the applied commands in memory only, so anything of them
// found on disk came through the raft stores.
type entryFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *entryFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return nil
}

func (f *entryFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return entrySnapshot(slices.Clone(f.entries)), nil
}

func (f *entryFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	return nil
}

func (f *entryFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

func (f *entryFSM) entry(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries[i]
}

type entrySnapshot []string

func (s entrySnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (entrySnapshot) Release() {}

// testNode is one raft server with its own data directory, keyring and stores.
type testNode struct {
	id    raft.ServerID
	fsm   *entryFSM
	trans *raft.InmemTransport
	bolt  *raftboltdb.BoltStore
	snaps raft.SnapshotStore
	raft  *raft.Raft
}

func clusterConfig(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	// Long enough that a loaded machine (the race detector, parallel packages) does not see
	// a missed heartbeat: the test needs n1 to keep the lead throughout.
	c.HeartbeatTimeout = 500 * time.Millisecond
	c.ElectionTimeout = 500 * time.Millisecond
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 20 // snapshots are taken by the test, not by a timer
	c.TrailingLogs = 2            // so a new server can only catch up by snapshot install
	c.Logger = hclog.NewNullLogger()
	return c
}

// startNode opens (or reopens) the node's stores in dir and starts raft on them.
func startNode(t *testing.T, id raft.ServerID, dir string, wrap bool) *testNode {
	t.Helper()
	n := &testNode{id: id, fsm: &entryFSM{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if n.bolt, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")}); err != nil {
		t.Fatal(err)
	}
	var logs raft.LogStore = n.bolt
	var stable raft.StableStore = n.bolt
	n.snaps = newFileSnapshots(t, dir)
	if wrap {
		kr := openOrCreateKeyring(t, dir)
		logs, stable, n.snaps = NewLogStore(logs, kr), NewStableStore(stable, kr), NewSnapshotStore(n.snaps, kr, nil)
	}
	_, n.trans = raft.NewInmemTransport(raft.ServerAddress(id))
	if n.raft, err = raft.NewRaft(clusterConfig(id), n.fsm, logs, stable, n.snaps, n.trans); err != nil {
		t.Fatal(err)
	}
	return n
}

var testKEK = sync.OnceValue(func() *keyring.KEK { k, _ := keyring.GenerateKEK("cluster-kek"); return k })

func openOrCreateKeyring(t *testing.T, dir string) *keyring.Keyring {
	path := filepath.Join(dir, "keyring")
	kr, err := keyring.Open(path, testKEK())
	if err != nil {
		kr, err = keyring.Create(path, testKEK())
	}
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func (n *testNode) stop(t *testing.T) {
	t.Helper()
	if n.raft == nil {
		return
	}
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Error(err)
	}
	if err := n.bolt.Close(); err != nil {
		t.Error(err)
	}
	n.raft = nil
}

// connect wires every pair of transports both ways.
func connect(nodes ...*testNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
}

func apply(t *testing.T, leader *testNode, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		cmd := fmt.Sprintf("vote %d %s", i, canary)
		if err := leader.raft.Apply([]byte(cmd), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
}

// TestClusterCatchUpBySnapshot runs three raft servers on the wrapped stores. The first takes a
// snapshot and compacts its log before the others join, so they catch up by snapshot install;
// one is then restarted to restore from its own encrypted snapshot. Every byte written is
// scanned for the canary; without the wrappers the same scan must find it.
func TestClusterCatchUpBySnapshot(t *testing.T) {
	for _, wrap := range []bool{true, false} {
		t.Run(map[bool]string{true: "encrypted", false: "plaintext"}[wrap], func(t *testing.T) {
			root := t.TempDir()
			runCluster(t, root, wrap)
			assertCanary(t, root, []byte(canary), !wrap)
		})
	}
}

func runCluster(t *testing.T, root string, wrap bool) {
	dirs := []string{filepath.Join(root, "n1"), filepath.Join(root, "n2"), filepath.Join(root, "n3")}
	n1 := startNode(t, "n1", dirs[0], wrap)
	nodes := []*testNode{n1}
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	boot := raft.Configuration{Servers: []raft.Server{{ID: n1.id, Address: n1.trans.LocalAddr()}}}
	if err := n1.raft.BootstrapCluster(boot).Error(); err != nil {
		t.Fatal(err)
	}
	poll(t, "n1 to lead", func() bool { return n1.raft.State() == raft.Leader })
	apply(t, n1, 0, 20)
	if err := n1.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, err := n1.bolt.FirstIndex(); err != nil || first <= 1 {
		t.Fatalf("leader log starts at %d (%v) after the snapshot; followers would not need one", first, err)
	}

	n2, n3 := startNode(t, "n2", dirs[1], wrap), startNode(t, "n3", dirs[2], wrap)
	nodes = append(nodes, n2, n3)
	connect(nodes...)
	for _, n := range []*testNode{n2, n3} {
		if err := n1.raft.AddVoter(n.id, n.trans.LocalAddr(), 0, 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, n1, 20, 25)
	for _, n := range nodes {
		poll(t, string(n.id)+" to apply 25 entries", func() bool { return n.fsm.count() == 25 })
	}
	for _, n := range []*testNode{n2, n3} {
		assertInstalledSnapshot(t, n)
	}

	// Restart n3: it must restore its FSM from its own encrypted snapshot and log.
	n3.stop(t)
	n3 = startNode(t, "n3", dirs[2], wrap)
	nodes[2] = n3
	connect(nodes...)
	poll(t, "restarted n3 to restore 25 entries", func() bool { return n3.fsm.count() == 25 })
	apply(t, n1, 25, 30)
	for _, n := range nodes {
		poll(t, string(n.id)+" to apply 30 entries", func() bool { return n.fsm.count() == 30 })
	}
	if first := n3.fsm.entry(0); !strings.Contains(first, canary) {
		t.Fatalf("restored entry lost its payload: %q", first)
	}
}

// assertInstalledSnapshot checks the follower holds a snapshot it received from the leader,
// and that the snapshot opens with the follower's own keyring at its exact size.
func assertInstalledSnapshot(t *testing.T, n *testNode) {
	t.Helper()
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("%s: no installed snapshot (%d, %v): it did not catch up by snapshot", n.id, len(metas), err)
	}
	meta, rc, err := n.snaps.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	copied, err := io.Copy(io.Discard, rc)
	if err != nil || copied != meta.Size {
		t.Fatalf("%s: snapshot read %d bytes, %v; meta.Size %d", n.id, copied, err, meta.Size)
	}
}
