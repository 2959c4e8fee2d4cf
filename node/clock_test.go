package node

import (
	"testing"
	"time"
)

func TestStampClockNeverGoesBack(t *testing.T) {
	c := newStampClock("n", nil)
	first := c.Now()
	c.last = first.Add(time.Hour) // as if the wall clock had been an hour ahead
	second := c.Now()
	if !second.After(first.Add(time.Hour)) {
		t.Fatalf("stamp %v after a clock step back, want after %v", second, first.Add(time.Hour))
	}
	if third := c.Now(); !third.After(second) {
		t.Fatalf("stamps %v then %v", second, third)
	}
}
