package fsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

func TestRecordDrillKeepsLastRunAndLastSuccess(t *testing.T) {
	h := newHarness(t)
	ok := &fsmpb.RecordDrill{Name: "failover", Ok: true, Summary: "20 failovers, nothing lost", StartedAtUnixNano: 1, FinishedAtUnixNano: 2, RtoNanos: 900e6, Report: []byte(`{"ok":true}`)}
	h.mustApply(fsmpb.CommandType_COMMAND_RECORD_DRILL, ok)
	successAt := stampTime(h.last).UnixNano()
	h.mustApply(fsmpb.CommandType_COMMAND_RECORD_DRILL, &fsmpb.RecordDrill{Name: "failover", Summary: "a follower lost a ballot", StartedAtUnixNano: 3, FinishedAtUnixNano: 4})
	h.mustApply(fsmpb.CommandType_COMMAND_RECORD_DRILL, &fsmpb.RecordDrill{Name: "restore", Ok: true, StartedAtUnixNano: 5, FinishedAtUnixNano: 6})
	recs, index, err := h.f.Drills()
	if err != nil {
		t.Fatal(err)
	}
	if index != h.last || len(recs) != 2 {
		t.Fatalf("%d records at index %d", len(recs), index)
	}
	f := recs[0]
	if f.Last.GetName() != "failover" || f.Last.GetOk() || f.Runs != 2 || f.Failures != 1 ||
		f.LastSuccessAtUnixNano != successAt || f.LastSuccessRtoNanos != 900e6 || f.LastRecordedAtUnixNano != stampTime(h.last-1).UnixNano() {
		t.Fatalf("failover record %v", f)
	}
	if recs[1].Last.GetName() != "restore" || recs[1].Runs != 1 {
		t.Fatalf("restore record %v", recs[1])
	}
}

// TestRecordDrillIsReplicatedState: the records are part of the digest and of snapshots, so a
// replica that missed one differs and a restored one has it.
func TestRecordDrillIsReplicatedState(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	for _, h := range []*harness{a, b} {
		h.openElection("v1")
	}
	a.mustApply(fsmpb.CommandType_COMMAND_RECORD_DRILL, &fsmpb.RecordDrill{Name: "dc-loss", Ok: true})
	b.mustApply(fsmpb.CommandType_COMMAND_NOOP, nil)
	if bytes.Equal(a.digest(), b.digest()) {
		t.Fatal("a drill record does not change the state digest")
	}
	c := newHarness(t)
	if err := c.f.Restore(persist(t, a.f)); err != nil {
		t.Fatal(err)
	}
	if recs, _, err := c.f.Drills(); err != nil || len(recs) != 1 || !bytes.Equal(c.digest(), a.digest()) {
		t.Fatalf("restored drills %v, %v", recs, err)
	}
}

func TestRecordDrillRefusals(t *testing.T) {
	h := newHarness(t)
	for _, p := range []*fsmpb.RecordDrill{
		{Name: ""},
		{Name: "Fail over"},
		{Name: strings.Repeat("a", maxDrillName+1)},
		{Name: "failover", Report: make([]byte, maxDrillReport+1)},
		{Name: "failover", StartedAtUnixNano: 5, FinishedAtUnixNano: 4},
		{Name: "failover", Summary: strings.Repeat("x", maxDrillSummaryLen+1)},
	} {
		wantCode(t, h.apply(fsmpb.CommandType_COMMAND_RECORD_DRILL, p), ErrInvalid)
	}
	if recs, _, _ := h.f.Drills(); len(recs) != 0 {
		t.Fatalf("a refused report was kept: %v", recs)
	}
}
