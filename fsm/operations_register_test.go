package fsm

import (
	"testing"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// TestOperationsEnterTheRegister: drill reports, backups (recorded by the node as events),
// retention ticks and the destruction steps each leave a described entry in the register.
func TestOperationsEnterTheRegister(t *testing.T) {
	h := newHarness(t)
	h.as(ActorOperator, func() {
		h.mustApply(fsmpb.CommandType_COMMAND_RECORD_DRILL, &fsmpb.RecordDrill{Name: "failover", Ok: true, Summary: "RTO 1.2 s, nothing lost"})
		h.mustApply(fsmpb.CommandType_COMMAND_RECORD_EVENT, &fsmpb.RecordEvent{Action: "backup", Object: "state at index 1", Outcome: "ok"})
	})
	h.mustApply(typeTick, &fsmpb.Tick{})
	var got []*audit.Entry
	if err := h.f.RegisterEntries(1, func(e *audit.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []struct{ actor, action, object string }{
		{ActorOperator, "drill", "drill failover"},
		{ActorOperator, "backup", "state at index 1"},
		{"system", "tick", "deadlines and retention periods"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d register entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Actor != w.actor && !(w.actor == "system" && e.Actor == "") || e.Action != w.action || e.Object != w.object || e.Outcome != audit.OutcomeOK {
			t.Errorf("entry %d: %s %q %q %q, want %s %q %q", e.Seq, e.Actor, e.Action, e.Object, e.Outcome, w.actor, w.action, w.object)
		}
	}
	if got[0].Detail != "succeeded: RTO 1.2 s, nothing lost" {
		t.Errorf("drill detail %q", got[0].Detail)
	}
}
