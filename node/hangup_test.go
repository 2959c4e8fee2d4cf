package node

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/transport/faultnet"
	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/transport/raftlayer"
)

// TestRefusesOnlyWhenNothingListens: only a refused dial counts as a dead leader; a live node
// and a node behind a partition (a dial that never completes) do not.
func TestRefusesOnlyWhenNothingListens(t *testing.T) {
	ca, err := pki.NewCA("e1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsOf := func(id string) (server, client *tls.Config) {
		cert, key, err := ca.IssueNode(id, []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if server, err = pki.ServerConfig(ca.CertPEM(), cert, key, "e1"); err != nil {
			t.Fatal(err)
		}
		if client, err = pki.ClientConfig(ca.CertPEM(), cert, key, "e1", ""); err != nil {
			t.Fatal(err)
		}
		return server, client
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	layerOf := func(id string, dial raftlayer.Dialer) *raftlayer.Layer {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		server, client := tlsOf(id)
		l := raftlayer.New(ln, nil, server, client, dial, quiet)
		t.Cleanup(func() { l.Close() })
		return l
	}
	fn := faultnet.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := &Node{raftLayer: layerOf("follower", fn.Dialer("follower")), ctx: ctx}

	live := layerOf("leader", nil)
	go func() { // the leader's raft transport: accept, then hang up
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if n.refuses(raft.ServerAddress(live.Addr().String())) {
		t.Fatal("a live node was taken for dead")
	}

	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := gone.Addr().String()
	gone.Close()
	if !n.refuses(raft.ServerAddress(deadAddr)) {
		t.Fatal("a closed port was not taken for a dead process")
	}

	fn.Register("leader", live.Addr().String())
	fn.Partition("follower", "leader")
	if n.refuses(raft.ServerAddress(live.Addr().String())) {
		t.Fatal("a partitioned node was taken for dead")
	}
}

// TestStandingRankGivesEachFollowerItsOwnSlot: the survivors of a dead leader stand in
// distinct slots, a witness last even when its id sorts first, and a nonvoter never.
func TestStandingRankGivesEachFollowerItsOwnSlot(t *testing.T) {
	voter := func(id string) raft.Server { return raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter} }
	servers := []raft.Server{voter("a-witness"), voter("b"), voter("c"), voter("dead"),
		{ID: "learner", Suffrage: raft.Nonvoter}}
	witness := map[raft.ServerID]bool{"a-witness": true}
	slots := map[int]raft.ServerID{}
	for _, self := range []raft.ServerID{"a-witness", "b", "c"} {
		rank, ok := standingRank(servers, "dead", self, witness[self])
		if !ok {
			t.Fatalf("%s has a vote but no rank", self)
		}
		if other, taken := slots[rank]; taken {
			t.Fatalf("%s and %s both stand in slot %d", self, other, rank)
		}
		slots[rank] = self
	}
	if w, _ := standingRank(servers, "dead", "a-witness", true); w <= max(mustRank(t, servers, "b"), mustRank(t, servers, "c")) {
		t.Fatalf("the witness stands in slot %d, not after the datacenter nodes", w)
	}
	if _, ok := standingRank(servers, "dead", "learner", false); ok {
		t.Fatal("a nonvoter was given a slot")
	}
}

func mustRank(t *testing.T, servers []raft.Server, self raft.ServerID) int {
	t.Helper()
	rank, ok := standingRank(servers, "dead", self, false)
	if !ok {
		t.Fatalf("%s has no rank", self)
	}
	return rank
}
