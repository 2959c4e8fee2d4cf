package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/internal/teststate"
	"github.com/urne-vote/urne/test/mailtest"
)

func TestJudgeReplicas(t *testing.T) {
	v := func(id string, index uint64, digest string) replicaView {
		return replicaView{id: id, index: index, digest: digest}
	}
	down := replicaView{id: "e", err: errors.New("unreachable")}
	tests := []struct {
		name   string
		views  []replicaView
		ok     bool
		nodes  string
		detail string
	}{
		{"agree", []replicaView{v("a", 5, "aa"), v("b", 5, "aa"), v("c", 5, "aa")}, true, "", "3 replicas agree"},
		{"one diverges", []replicaView{v("a", 5, "aa"), v("b", 5, "bb"), v("c", 5, "aa")}, false, "b", "replica b diverges"},
		{"no majority", []replicaView{v("a", 5, "aa"), v("b", 5, "bb")}, false, "a,b", "no majority"},
		{"unreachable is not blamed", []replicaView{v("a", 5, "aa"), down, v("c", 5, "cc"), v("d", 5, "aa")}, false, "c", "not reachable: e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := judgeReplicas(tt.views)
			if f.Ok != tt.ok || strings.Join(f.Nodes, ",") != tt.nodes || !strings.Contains(f.Detail, tt.detail) {
				t.Fatalf("got ok=%v nodes=%v detail=%q", f.Ok, f.Nodes, f.Detail)
			}
		})
	}
}

func TestSMTPSenderDelivers(t *testing.T) {
	srv := mailtest.Start(t)
	s := smtpSender{cfg: AlertMailConfig{Server: srv.Addr, From: "urne@example.org", To: []string{"bureau@example.org"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.SendAlert(ctx, "intégrité: échec", "line one\n.line starting with a dot\n"); err != nil {
		t.Fatal(err)
	}
	m, err := srv.Find("line one", "\r\n.line starting with a dot", "Subject: =?utf-8?q?")
	if err != nil || m.From != "urne@example.org" || len(m.To) != 1 {
		t.Fatalf("message %+v, %v", m, err)
	}
	bad := smtpSender{cfg: AlertMailConfig{Server: "127.0.0.1:1", From: "urne@example.org", To: []string{"x@example.org"}}}
	if err := bad.SendAlert(ctx, "s", "b"); err == nil {
		t.Fatal("delivery to a closed port reported as sent")
	}
}

// TestScheduledChecksReadInTurn: a scheduled check reads a part of the box and of the register
// from where the last one stopped; a check on demand reads them whole and keeps the turn.
func TestScheduledChecksReadInTurn(t *testing.T) {
	b, err := teststate.NewBuilder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	const ballots = 2000
	if err := b.Open(ctx, "e-box", "Box", ballots, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.CastBatches(ctx, 0, ballots, 64, 1, nil); err != nil {
		t.Fatal(err)
	}
	// All 16 slices of the box hold ballots: one slice, and one register entry, per check.
	c := &checker{n: &Node{fsm: b.FSM, auditor: &auditor{}}, budget: 1}
	for _, tc := range []struct {
		trigger, box, register string
		boxNext                int
		registerNext           uint64
	}{
		{triggerScheduled, "in 1 of the 16 slices of the box, from slice 0,", "entries 1 to 1 chain", 1, 2},
		{triggerScheduled, "in 1 of the 16 slices of the box, from slice 1,", "entries 2 to 2 chain", 2, 3},
		{"on-demand", "2000 ballots match the running digest", "entries chain, 0 timestamps verify, head", 2, 3},
		{triggerScheduled, "in 1 of the 16 slices of the box, from slice 2,", "entries 3 to 3 chain", 3, 4},
	} {
		budget := c.budgetFor(tc.trigger)
		box, register := c.checkBox(budget), c.checkRegister(budget)
		if !box.Ok || !strings.Contains(box.Detail, tc.box) || c.boxNext != tc.boxNext {
			t.Fatalf("%s check of the box: %v %q, next slice %d; want %q, next slice %d", tc.trigger, box.Ok, box.Detail, c.boxNext, tc.box, tc.boxNext)
		}
		if !register.Ok || !strings.Contains(register.Detail, tc.register) || c.registerNext != tc.registerNext {
			t.Fatalf("%s check of the register: %v %q, next entry %d; want %q, next entry %d",
				tc.trigger, register.Ok, register.Detail, c.registerNext, tc.register, tc.registerNext)
		}
	}
}

// TestScheduledChecksLeaveTheReplicasToTheLeader: a digest walks every replica's whole
// database, so a follower's scheduled check does not ask for them. The system tests
// (test/integrity_test.go) show the leader's finding a diverging replica.
func TestScheduledChecksLeaveTheReplicasToTheLeader(t *testing.T) {
	c := &checker{n: &Node{}, leads: func() bool { return false }} // a node without raft: asking would panic
	if f := c.checkReplicas(context.Background(), true); !f.Ok || !strings.Contains(f.Detail, "compared by the leader") {
		t.Fatalf("a follower's scheduled check: %v %q", f.Ok, f.Detail)
	}
}
