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

// TestScheduledChecksWalkTheBoxInTurn: a scheduled check walks a few slices of the box from
// where the last one stopped; a check on demand walks the whole box and keeps the turn.
func TestScheduledChecksWalkTheBoxInTurn(t *testing.T) {
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
	c := &checker{n: &Node{fsm: b.FSM}, boxBudget: 1} // all 16 slices hold ballots: one slice per check
	for _, tc := range []struct {
		trigger, detail string
		next            int
	}{
		{triggerScheduled, "in 1 of the 16 slices of the box, from slice 0,", 1},
		{triggerScheduled, "in 1 of the 16 slices of the box, from slice 1,", 2},
		{"on-demand", "2000 ballots match the running digest", 2},
		{triggerScheduled, "in 1 of the 16 slices of the box, from slice 2,", 3},
	} {
		f := c.checkBox(tc.trigger)
		if !f.Ok || !strings.Contains(f.Detail, tc.detail) || c.boxNext != tc.next {
			t.Fatalf("%s check: %v %q, next slice %d; want %q, next slice %d", tc.trigger, f.Ok, f.Detail, c.boxNext, tc.detail, tc.next)
		}
	}
}
