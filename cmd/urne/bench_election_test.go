package main

import (
	"maps"
	"testing"
)

// Each phase counts the terms begun between its start and its end; a phase whose start or
// end no node answered is left out rather than counted from zero.
func TestPhaseTerms(t *testing.T) {
	answers := []uint64{3, 3, 5, 0, 7, 9}
	p := phaseTerms{begun: map[string]uint64{}, ask: func() uint64 {
		a := answers[0]
		answers = answers[1:]
		return a
	}}
	for _, phase := range []string{"import", "cast", "close", "count", "restart", ""} {
		p.enter(phase)
	}
	want := map[string]uint64{"import": 0, "cast": 2, "restart": 2}
	if !maps.Equal(p.begun, want) {
		t.Fatalf("terms begun %v, want %v", p.begun, want)
	}
}
