package node

import (
	"errors"
	"testing"
	"time"

	"github.com/urne-vote/urne/transport/urnepb"
)

func TestChaosInjectChecksFaults(t *testing.T) {
	cfg := Config{NodeID: "a", Bootstrap: []Peer{{ID: "b", Raft: "10.0.0.2:1", GRPC: "10.0.0.2:2"}}}
	opts := Options{}
	c := newChaosState(cfg, &opts)
	if opts.Dialer == nil || opts.WrapListener == nil {
		t.Fatal("chaos did not wire its network into the node's dialer and listener")
	}
	bad := []*urnepb.ChaosFault{
		{Kind: "explode"},
		{Kind: "partition", From: "a"},
		{Kind: "delay", From: "a", To: "b"},
		{Kind: "delay", From: "a", To: "b", DelayNanos: int64(time.Hour)},
		{Kind: "failpoint", Failpoint: "fsm/commit", Spec: "sometimes"},
	}
	for _, f := range bad {
		if err := c.inject(f); !errors.Is(err, ErrInvalidChaos) {
			t.Errorf("%v: %v, want ErrInvalidChaos", f, err)
		}
	}
	if err := c.inject(&urnepb.ChaosFault{Kind: "partition", From: "a", To: "b"}); err != nil {
		t.Fatal(err)
	}
	if !c.net.Dropped("a", "b") || !c.net.Dropped("b", "a") {
		t.Fatal("partition not applied")
	}
	if st := c.state("a"); len(st.Faults) != 2 || st.Faults[0].Kind != "block" {
		t.Fatalf("state %v, want the two dropped directions", st.Faults)
	}
}
