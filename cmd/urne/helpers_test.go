package main

import (
	"testing"
	"time"

	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/transport/urnepb"
)

func TestFirstAckAfterStall(t *testing.T) {
	kill := time.Unix(1000, 0)
	at := func(ms int) workload.Op { return workload.Op{End: kill.Add(time.Duration(ms) * time.Millisecond)} }
	tests := []struct {
		name string
		ops  []workload.Op
		want time.Duration
		ok   bool
	}{
		{"reply in flight at the kill is not the failover", []workload.Op{at(-5), at(1), at(2), at(1200), at(1210), at(1220)}, 1200 * time.Millisecond, true},
		{"no stall", []workload.Op{at(10), at(20), at(30)}, 10 * time.Millisecond, true},
		{"nothing after the kill", []workload.Op{at(-10)}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := firstAckAfterStall(tt.ops, kill)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestJudgeDigests(t *testing.T) {
	tests := []struct {
		name            string
		views           []digestView
		agree, diverged bool
	}{
		{"same index same digest", []digestView{{AppliedIndex: 5, Digest: "aa"}, {AppliedIndex: 5, Digest: "aa"}}, true, false},
		{"same index other digest", []digestView{{AppliedIndex: 5, Digest: "aa"}, {AppliedIndex: 5, Digest: "bb"}}, false, true},
		{"different indexes", []digestView{{AppliedIndex: 5, Digest: "aa"}, {AppliedIndex: 6, Digest: "bb"}}, false, false},
		{"a node does not answer", []digestView{{AppliedIndex: 5, Digest: "aa"}, {Error: "down"}}, false, false},
		{"nobody", nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := judgeDigests(tt.views)
			if r.Agree != tt.agree || r.Diverged != tt.diverged {
				t.Fatalf("agree %v diverged %v, want %v %v", r.Agree, r.Diverged, tt.agree, tt.diverged)
			}
		})
	}
}

func TestLeaders(t *testing.T) {
	info := func(id, state, leader string, term uint64) nodeAnswer {
		return nodeAnswer{info: &urnepb.NodeInfo{Id: id, RaftState: state, LeaderId: leader, Term: term}}
	}
	down := nodeAnswer{err: errNodeExited}
	// After a crash the followers of the old term still name the old leader; the new leader's
	// higher term wins.
	answers := []nodeAnswer{info("b", "Follower", "a", 2), info("c", "Leader", "c", 3), info("d", "Follower", "c", 3), down}
	if got := seenLeader(answers); got != "c" {
		t.Fatalf("seenLeader = %q, want c", got)
	}
	if got := agreedLeader(answers); got != "" {
		t.Fatalf("agreedLeader = %q while nodes disagree and one is down", got)
	}
	agreed := []nodeAnswer{info("a", "Leader", "a", 3), info("b", "Follower", "a", 3)}
	if got := agreedLeader(agreed); got != "a" {
		t.Fatalf("agreedLeader = %q, want a", got)
	}
	if got := seenLeader([]nodeAnswer{down, info("b", "Candidate", "", 4)}); got != "" {
		t.Fatalf("seenLeader = %q with no leader known", got)
	}
}

func TestOutputFlag(t *testing.T) {
	tests := map[string][]string{
		"json": {"status", "-o", "json"},
		"text": {"status"},
	}
	tests["yaml"] = []string{"-oyaml", "x"}
	for want, args := range tests {
		if got := outputFlag(args); got != want {
			t.Errorf("%v: %q, want %q", args, got, want)
		}
	}
	for _, args := range [][]string{{"--output=json"}, {"--output", "json"}, {"-o=json"}} {
		if got := outputFlag(args); got != formatJSON {
			t.Errorf("%v: %q", args, got)
		}
	}
	if got := outputFlag([]string{"--", "-o", "json"}); got != formatText {
		t.Errorf("after --: %q", got)
	}
}
