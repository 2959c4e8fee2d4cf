package main

import (
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/test/chaos"
)

func TestReportSumsRunsAndShowsViolations(t *testing.T) {
	results := []chaos.Result{
		{Scenario: "b", Ops: 10, Acked: 6, Failed: 3, Unknown: 1, Seconds: 4},
		{Scenario: "b", Ops: 20, Acked: 12, Failed: 6, Unknown: 2, Seconds: 6},
		{Scenario: "a", Ops: 5, Acked: 5, Violations: 2, Checks: []string{"linearizable", "linearizable"}, Seconds: 1},
		{Scenario: "c", Error: "the run failed before its history was checked"},
	}
	got := report(results, 2, "1", time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC))
	for _, want := range []string{
		"| b | 2 | 0 | 30 | 18 | 9 | 3 | 0 | 5 s |",
		"| a | 1 | 1 | 5 | 5 | 0 | 0 | 2 | 1 s |",
		"| **all** | 4 | 2 | 35 | 23 | 9 | 3 | 2 | |",
		"a: check linearizable failed in 2 runs",
		"c: the run failed before its history was checked",
		"a: 1 of 2 runs recorded",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "No violation") {
		t.Errorf("a report with violations claims none")
	}
	if clean := report(results[:2], 2, "1", time.Now()); !strings.Contains(clean, "**No violation** in 2 runs (30 operations)") {
		t.Errorf("clean report:\n%s", clean)
	}
}
