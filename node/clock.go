package node

import (
	"sync"
	"time"

	"github.com/urne-vote/urne/internal/failpoint"
)

// stampClock is the leader's clock for stamping commands. It never goes back: a stamp is
// at least one nanosecond after the previous one this node gave, so a wall clock stepped
// back (NTP correction, a VM restored) does not make an émargement look older than the one
// before it. After a step forward, stamps run one nanosecond apart until the wall clock
// catches up. A failpoint may shift the wall clock to play such jumps.
type stampClock struct {
	base   func() time.Time // the wall clock, or a test's clock
	offset failpoint.Point
	mu     sync.Mutex
	last   time.Time
}

func newStampClock(nodeID string, base func() time.Time) *stampClock {
	if base == nil {
		base = time.Now
	}
	return &stampClock{base: base, offset: failpoint.New(nodeID, failpoint.ClockOffset)}
}

// Now returns the next stamp.
func (c *stampClock) Now() time.Time {
	now := c.base().Add(c.offset.Offset()).Round(0) // wall clock only: stamps are compared as such
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.After(c.last) {
		now = c.last.Add(time.Nanosecond)
	}
	c.last = now
	return now
}
