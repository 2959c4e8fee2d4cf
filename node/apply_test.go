package node

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// silentFuture is a raft future nobody will ever answer, like one enqueued just before raft
// shut down.
type silentFuture struct{ never chan error }

func (f silentFuture) Error() error { return <-f.never }

func TestAwaitReturnsWhenTheNodeStops(t *testing.T) {
	n := &Node{}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.await(silentFuture{never: make(chan error)}) }()
	n.cancel()
	if err := <-done; !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("await of an unanswered future after stop: %v, want %v", err, raft.ErrRaftShutdown)
	}
}

func TestAwaitReturnsTheFuturesAnswer(t *testing.T) {
	n := &Node{}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer n.cancel()
	answer := make(chan error, 1)
	answer <- raft.ErrLeadershipLost
	if err := n.await(silentFuture{never: answer}); !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("await: %v, want %v", err, raft.ErrLeadershipLost)
	}
}
