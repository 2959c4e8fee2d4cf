package workload

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/client/internal/fakeurne"
)

func TestVerifyPassesOnAHealthyCluster(t *testing.T) {
	fc := startCluster(t, 3, 200)
	c := newClient(t, fc, nil)
	h := runLoad(t, c, Config{Voters: 200, Concurrency: 8})
	r := verify(t, fc, c, h)
	if !r.OK() || len(r.Nodes) != 3 || r.Acked != 200 {
		t.Fatalf("report on a healthy cluster:\n%s", r)
	}
	if !strings.Contains(r.String(), "all checks passed") {
		t.Errorf("report text:\n%s", r)
	}
}

func TestVerifyDetects(t *testing.T) {
	tests := []struct {
		name   string
		damage func(fc *fakeurne.Cluster)
		want   Check
		node   string // the node the violation names; "" for any
	}{
		{"a lost acknowledged ballot", func(fc *fakeurne.Cluster) {
			fc.Mutate(func(s *fakeurne.State) { s.Box[0] = bytes.Repeat([]byte{7}, 32) })
		}, CheckAckedPresent, ""},
		{"a replica missing an acknowledged ballot", func(fc *fakeurne.Cluster) {
			fc.Node("n3").Diverge(func(s *fakeurne.State) { s.Box = s.Box[1:] })
		}, CheckAckedPresent, "n3"},
		{"ballots beyond acked plus unknown", func(fc *fakeurne.Cluster) {
			fc.Mutate(func(s *fakeurne.State) {
				for i := range 3 {
					s.Box = append(s.Box, bytes.Repeat([]byte{byte(i)}, 32))
					s.Emarged[fmt.Sprintf("x%d", i)] = 1
				}
			})
		}, CheckBallotCount, ""},
		{"fewer ballots than acked", func(fc *fakeurne.Cluster) {
			fc.Mutate(func(s *fakeurne.State) {
				s.Box = s.Box[2:]
				delete(s.Emarged, "v000001")
				delete(s.Emarged, "v000002")
			})
		}, CheckBallotCount, ""},
		{"an émargement without ballot", func(fc *fakeurne.Cluster) {
			fc.Mutate(func(s *fakeurne.State) { s.Emarged["v009999"] = 1 })
		}, CheckEmargements, ""},
		{"a ballot this run never sent", func(fc *fakeurne.Cluster) {
			fc.Mutate(func(s *fakeurne.State) { s.Box[0] = bytes.Repeat([]byte{9}, 32) })
		}, CheckForeignBallot, ""},
		{"disagreeing digests", func(fc *fakeurne.Cluster) {
			fc.Node("n2").SetDigest([]byte("another state"))
		}, CheckAgreement, "n2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := startCluster(t, 3, 50)
			c := newClient(t, fc, nil)
			h := runLoad(t, c, Config{Voters: 50, Concurrency: 4})
			tt.damage(fc)
			r := verify(t, fc, c, h)
			if !r.Has(tt.want) {
				t.Fatalf("report misses %s:\n%s", tt.want, r)
			}
			if tt.node == "" {
				return
			}
			for _, v := range r.Violations {
				if v.Check == tt.want && v.Endpoint != fc.Node(tt.node).Addr {
					t.Errorf("violation names %s, want node %s: %s", v.Endpoint, tt.node, v)
				}
			}
		})
	}
}

func TestVerifyDigestsAloneCatchADivergence(t *testing.T) {
	fc := startCluster(t, 3, 20)
	c := newClient(t, fc, nil)
	h := runLoad(t, c, Config{Voters: 20})
	fc.Node("n2").SetDigest([]byte("another state"))
	r := verify(t, fc, c, h)
	if got := checksOf(r); len(got) != 1 || !got[CheckAgreement] {
		t.Fatalf("checks %v, want agreement only:\n%s", got, r)
	}
}

func TestVerifyReportsReplicasThatDoNotConverge(t *testing.T) {
	old := convergenceTimeout
	convergenceTimeout = 200 * time.Millisecond
	t.Cleanup(func() { convergenceTimeout = old })
	fc := startCluster(t, 3, 10)
	c := newClient(t, fc, nil)
	h := runLoad(t, c, Config{Voters: 10})
	fc.Node("n3").SetLag(2)

	r, err := h.Verify(context.Background(), c, fc.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Has(CheckConvergence) || r.Has(CheckAgreement) {
		t.Fatalf("report:\n%s", r)
	}
}

func TestVerifyReportsAnUnreachableNode(t *testing.T) {
	fc := startCluster(t, 3, 10)
	c := newClient(t, fc, nil)
	h := runLoad(t, c, Config{Voters: 10})
	fc.Node("n3").Stop()
	r, err := h.Verify(context.Background(), c, fc.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Has(CheckRead) || len(r.Nodes) != 2 {
		t.Fatalf("report:\n%s", r)
	}
}

func TestVerifyChecksReceipts(t *testing.T) {
	fc := startCluster(t, 1, 1)
	c := newClient(t, fc, nil)
	h := NewHistory()
	h.Record(Op{VoterID: "v000001", Outcome: OutcomeOK, Fingerprint: []byte{1}, BallotFingerprint: []byte{2}})
	r, err := h.Verify(context.Background(), c, fc.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Has(CheckReceipt) {
		t.Fatalf("report:\n%s", r)
	}
}

func TestVerifyBoundsTheReport(t *testing.T) {
	fc := startCluster(t, 1, 100)
	c := newClient(t, fc, nil)
	h := runLoad(t, c, Config{Voters: 100})
	fc.Mutate(func(s *fakeurne.State) {
		for i := range s.Box {
			s.Box[i] = bytes.Repeat([]byte{byte(i)}, 32)
		}
	})
	r := verify(t, fc, c, h)
	var missing int
	for _, v := range r.Violations {
		if v.Check == CheckAckedPresent {
			missing++
		}
	}
	if missing != maxDetailsPerCheck+1 || !strings.Contains(r.String(), "80 more violations") {
		t.Fatalf("%d acked-present lines, want %d and a summary:\n%s", missing, maxDetailsPerCheck+1, r)
	}
}

func TestWaitConverged(t *testing.T) {
	fc := startCluster(t, 3, 1)
	c := newClient(t, fc, nil)
	tests := []struct {
		name   string
		damage func()
		repair func()
		want   string
	}{
		{"a lagging node", func() { fc.Node("n2").SetLag(1) }, func() { fc.Node("n2").SetLag(0) }, "applied"},
		{"no leader", func() { fc.SetLeader("") }, func() { fc.SetLeader("n1") }, `leader ""`},
	}
	for _, tt := range tests {
		tt.damage()
		// Long enough for one full round of answers even on a loaded machine under -race.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := WaitConverged(ctx, c, fc.Endpoints())
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%s: WaitConverged = %v, want a failure mentioning %q", tt.name, err, tt.want)
		}
		tt.repair()
		if err := WaitConverged(context.Background(), c, fc.Endpoints()); err != nil {
			t.Fatalf("%s, repaired: %v", tt.name, err)
		}
	}
}
