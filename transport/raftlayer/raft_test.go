package raftlayer

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// countingFSM records applied entries; it is all a cluster needs to show replication works.
type countingFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *countingFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return len(f.entries)
}

func (f *countingFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not supported") }
func (f *countingFSM) Restore(io.ReadCloser) error         { return fmt.Errorf("not supported") }

type testNode struct {
	raft *raft.Raft
	fsm  *countingFSM
	addr raft.ServerAddress
}

func startNode(t *testing.T, e election, id string) *testNode {
	t.Helper()
	return startNodeWithLog(t, e, id, raft.NewInmemStore())
}

func startNodeWithLog(t *testing.T, e election, id string, logs raft.LogStore) *testNode {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	layer := newLayer(t, e, id, nil, quiet)
	trans := NewTransport(layer, quiet)
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	// The lan profile's timeouts would do on an idle machine; under the race detector on a
	// loaded one, a leader starved for 200 ms lost its lease mid-test.
	cfg.HeartbeatTimeout = 600 * time.Millisecond
	cfg.ElectionTimeout = 600 * time.Millisecond
	cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	cfg.CommitTimeout = 10 * time.Millisecond
	cfg.Logger = NewHCLogger(quiet, "raft")
	fsm := &countingFSM{}
	r, err := raft.NewRaft(cfg, fsm, logs, raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("shutdown %s: %v", id, err)
		}
		trans.Close()
	})
	return &testNode{raft: r, fsm: fsm, addr: trans.LocalAddr()}
}

func TestRaftClusterOverLayer(t *testing.T) {
	e := newElection(t, "e1")
	var nodes []*testNode
	var servers []raft.Server
	for _, id := range []string{"n1", "n2", "n3"} {
		n := startNode(t, e, id)
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: n.addr, Suffrage: raft.Voter})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	var leader *testNode
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	const entries = 20
	for i := 0; i < entries; i++ {
		if err := leader.raft.Apply([]byte(fmt.Sprintf("entry-%d", i)), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	for _, n := range nodes {
		waitFor(t, fmt.Sprintf("%s to apply every entry", n.addr), func() bool { return n.fsm.count() == entries })
	}
}

// flakyLog fails every third append while failing is set, as a disk whose fsync fails would.
type flakyLog struct {
	*raft.InmemStore
	mu      sync.Mutex
	failing bool
	calls   int
}

func (f *flakyLog) StoreLogs(logs []*raft.Log) error {
	f.mu.Lock()
	f.calls++
	fail := f.failing && f.calls%3 == 0
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("fsync failed")
	}
	return f.InmemStore.StoreLogs(logs)
}

func (f *flakyLog) StoreLog(l *raft.Log) error { return f.StoreLogs([]*raft.Log{l}) }

func (f *flakyLog) setFailing(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
}

// A follower whose disk refused appends for a while must catch up once it accepts them
// again. With raft's pipelined replication, a refused append under load could leave the
// leader's replication to it stuck for good while heartbeats went on.
func TestFollowerCatchesUpAfterRefusedAppends(t *testing.T) {
	if tr := NewTransport(newLayer(t, newElection(t, "e0"), "p", nil, nil), nil); tr != nil {
		_, err := tr.AppendEntriesPipeline("x", "127.0.0.1:1")
		tr.Close()
		if err != raft.ErrPipelineReplicationNotSupported {
			t.Fatalf("pipelined replication is on (%v)", err)
		}
	}
	e := newElection(t, "e1")
	flaky := &flakyLog{InmemStore: raft.NewInmemStore()}
	nodes := []*testNode{startNode(t, e, "n1"), startNode(t, e, "n2"), startNodeWithLog(t, e, "n3", flaky)}
	var servers []raft.Server
	for i, n := range nodes {
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprintf("n%d", i+1)), Address: n.addr, Suffrage: raft.Voter})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to lead", func() bool { return nodes[0].raft.State() == raft.Leader })
	flaky.setFailing(true)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range 40 {
				_ = nodes[0].raft.Apply([]byte(fmt.Sprintf("w%d-%d", w, i)), 5*time.Second).Error()
			}
		})
	}
	wg.Wait()
	flaky.setFailing(false)
	want := nodes[0].fsm.count()
	waitFor(t, "the follower with the failing disk to catch up", func() bool { return nodes[2].fsm.count() >= want })
}
