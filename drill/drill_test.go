package drill

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/transport/urnepb"
)

func TestStatusOverdue(t *testing.T) {
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	rec := func(name string, ok bool, success time.Time) *urnepb.DrillRecord {
		r := &urnepb.DrillRecord{Last: &urnepb.DrillReport{Name: name, Ok: ok}, Runs: 1, LastRecordedAtUnixNano: now.Add(-time.Hour).UnixNano()}
		if !success.IsZero() {
			r.LastSuccessAtUnixNano, r.LastSuccessRtoNanos = success.UnixNano(), 1500e6
		}
		return r
	}
	resp := &urnepb.DrillStatusResponse{Drills: []*urnepb.DrillRecord{
		rec(NameFailover, true, now.Add(-10*24*time.Hour)),
		rec(NameRestore, false, now.Add(-93*24*time.Hour)), // failed lately, succeeded long ago
		rec(NameDCLoss, false, time.Time{}),                // never succeeded
		rec("chaos", true, now.Add(-24*time.Hour)),         // a drill of a newer version
	}}
	r := judgeStatus(resp, now)
	want := map[string]bool{NameFailover: false, NameRestore: true, NameDCMigration: true, NameDCLoss: true, "chaos": false}
	if len(r.Drills) != len(want) {
		t.Fatalf("%d drills listed: %+v", len(r.Drills), r.Drills)
	}
	for _, s := range r.Drills {
		if s.Overdue != want[s.Drill] {
			t.Errorf("%s overdue %v, want %v (%+v)", s.Drill, s.Overdue, want[s.Drill], s)
		}
	}
	if f := r.Drills[0]; f.LastRTOMillis != 1500 || f.DaysSinceSuccess < 9.9 || f.DaysSinceSuccess > 10.1 {
		t.Errorf("failover status %+v", f)
	}
	if strings.Join(r.Overdue, ",") != "restore,dc-migration,dc-loss" {
		t.Errorf("overdue %v", r.Overdue)
	}
}

func TestFirstAckAfter(t *testing.T) {
	at := time.Unix(1000, 0)
	op := func(start, end int) workload.Op {
		return workload.Op{Start: at.Add(time.Duration(start) * time.Millisecond), End: at.Add(time.Duration(end) * time.Millisecond)}
	}
	acked := []workload.Op{op(-10, -5), op(-3, 2), op(1, 900), op(5, 905), op(950, 960), op(2500, 3000)}
	if d, ok := firstAckAfter(acked, at, at.Add(2*time.Second)); !ok || d != 900*time.Millisecond {
		t.Fatalf("got %v %v, want 900ms: the cast issued before the disruption does not count", d, ok)
	}
	if _, ok := firstAckAfter(acked, at, at.Add(500*time.Millisecond)); ok {
		t.Fatal("no cast issued after the disruption was acknowledged within the window")
	}
}

func TestReportVerdict(t *testing.T) {
	r := &Report{Drill: NameFailover, start: time.Now()}
	r.check("rpo-zero", true, "fine")
	r.check("replicas-agree", false, "dc1-b differs")
	r.finish(nil)
	if r.OK || !strings.Contains(r.Verdict, "FAILED: replicas-agree: dc1-b differs") {
		t.Fatalf("verdict %q", r.Verdict)
	}
	empty := &Report{Drill: NameRestore, start: time.Now()}
	empty.finish(nil)
	if empty.OK {
		t.Fatal("a drill that checked nothing passed")
	}
}

func TestStoredReportFitsTheCluster(t *testing.T) {
	r := &Report{Drill: NameFailover, Verdict: "PASSED"}
	for i := range 5000 {
		r.Steps = append(r.Steps, Step{AtSeconds: float64(i), What: strings.Repeat("x", 40)})
	}
	r.Failovers = make([]FailoverRound, 20)
	b, err := storedJSON(r)
	if err != nil || len(b) > maxStoredReport {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Steps) != 0 || len(back.Failovers) != 20 {
		t.Fatalf("the steps, not the failovers, should have been left out: %d steps, %d failovers, %v", len(back.Steps), len(back.Failovers), err)
	}
}
