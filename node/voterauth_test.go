package node

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst of logins computes no more slow hashes at once than the limiter's slots: the rest
// wait, and every one of them runs in the end.
func TestSlowHashesWaitForASlot(t *testing.T) {
	l := make(limiter, 2)
	release := make(chan struct{})
	var running, most, done atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			l.do(func() {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				running.Add(-1)
				done.Add(1)
			})
		})
	}
	for deadline := time.Now().Add(10 * time.Second); running.Load() != int32(cap(l)); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d hashes running, want %d", running.Load(), cap(l))
		}
	}
	close(release)
	wg.Wait()
	if most.Load() != int32(cap(l)) || done.Load() != 8 {
		t.Fatalf("at most %d ran at once and %d of 8 ran, want %d at once and all 8", most.Load(), done.Load(), cap(l))
	}
	if s := newSlowHashLimiter(); cap(s) < 1 {
		t.Fatalf("the node's limiter has %d slots", cap(s))
	}
}
