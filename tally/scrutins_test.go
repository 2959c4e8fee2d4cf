package tally

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckScrutinsComparesEachScrutin(t *testing.T) {
	res := func() *Result {
		return &Result{Ballots: 5, Emargements: 5, Scrutins: []ScrutinCount{{ID: "ct", Ballots: 3}, {ID: "cap", Ballots: 2}}}
	}
	ok := res()
	if err := CheckScrutins(ok, map[string]int{"ct": 3, "cap": 2}); err != nil {
		t.Fatalf("matching counts: %v", err)
	}
	if *ok.Scrutins[0].Emargements != 3 || len(Anomalies(&Result{Scrutins: ok.Scrutins})) != 0 {
		t.Fatalf("émargements not recorded: %+v", ok.Scrutins)
	}
	// The totals agree (5 and 5), but a ballot sits in the wrong scrutin.
	swapped := res()
	err := CheckScrutins(swapped, map[string]int{"ct": 2, "cap": 3})
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "ct (3 ballots, 2 émargements)") {
		t.Fatalf("swapped counts: %v", err)
	}
	if a := Anomalies(swapped); len(a) != 2 {
		t.Fatalf("anomalies %q, want one per scrutin", a)
	}
	// Émargements in a scrutin without any ballot.
	missing := res()
	err = CheckScrutins(missing, map[string]int{"ct": 3, "cap": 2, "cse": 1})
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "cse (0 ballots, 1 émargements)") {
		t.Fatalf("scrutin without ballots: %v", err)
	}
}
