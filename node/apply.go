package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// applyTimeout bounds how long a proposal may wait to enter raft's queue.
const applyTimeout = 5 * time.Second

// Propose validates a command and has the leader stamp, commit and apply it. On a follower
// the command is forwarded to the leader. The response is the state machine's answer; an
// error is either a rejection (fsm sentinel errors) or ErrNoLeader / ErrOutcomeUnknown.
func (n *Node) Propose(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.Response, uint64, error) {
	if err := fsm.Validate(cmd); err != nil {
		return nil, 0, err
	}
	// Leadership may move between the check and the proposal; a few rounds settle it.
	for range 3 {
		if n.raft.State() == raft.Leader {
			resp, index, err := n.applyLocal(cmd)
			if !errors.Is(err, errNotLeaderAnyMore) {
				return resp, index, err
			}
		}
		leaderID, err := n.waitLeader(ctx)
		if err != nil {
			return nil, 0, err
		}
		if leaderID != n.cfg.NodeID {
			return n.forwardApply(ctx, leaderID, cmd)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
		}
	}
	return nil, 0, fmt.Errorf("%w: leadership is changing", ErrNoLeader)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errNotLeaderAnyMore means the command never entered the log because leadership moved first.
var errNotLeaderAnyMore = errors.New("not the leader")

// applyLocal stamps the command with the leader's time and randomness, commits it and
// returns the state machine's response. Every raft future is checked: an error raft leaves
// undecided becomes ErrOutcomeUnknown so that the caller retries with the same request id.
// Casts go through the batcher, which commits those that arrive together as one entry.
func (n *Node) applyLocal(cmd *fsmpb.Command) (*fsmpb.Response, uint64, error) {
	if cmd.Type == fsmpb.CommandType_COMMAND_CAST {
		return n.applyCast(cmd)
	}
	stamped := cmdClone(cmd)
	if err := fsm.Stamp(stamped, n.clock.Now(), rand.Reader); err != nil {
		return nil, 0, fmt.Errorf("stamp command: %w", err)
	}
	data, err := fsm.Encode(stamped)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	f := n.raft.Apply(data, applyTimeout)
	if err := n.await(f); err != nil {
		return nil, 0, classifyApplyError(err)
	}
	n.metrics.observeCommit(time.Since(start))
	resp, ok := f.Response().(*fsmpb.Response)
	if !ok {
		return nil, 0, fmt.Errorf("state machine returned %T", f.Response())
	}
	return resp, f.Index(), nil
}

// classifyApplyError maps raft's errors to ours. ErrNotLeader, ErrEnqueueTimeout and
// ErrLeadershipTransferInProgress are returned before the entry is appended: the write did
// not happen. The others leave the outcome open.
func classifyApplyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return errNotLeaderAnyMore
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	default:
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
}

// await waits for a raft future, or for the node to stop. Raft answers the futures it dequeued
// when it shuts down, but not one a caller put in its queue just before: that one's Error
// blocks for ever, and with it the node's shutdown, which waits for its own goroutines.
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.ctx.Done():
		return raft.ErrRaftShutdown
	}
}

func cmdClone(c *fsmpb.Command) *fsmpb.Command {
	return &fsmpb.Command{Version: c.Version, Type: c.Type, Flags: c.Flags, Payload: c.Payload, StampedAtUnixNano: c.StampedAtUnixNano, Actor: c.Actor}
}

// waitLeader returns the current leader's id, waiting up to one election timeout for one to appear.
func (n *Node) waitLeader(ctx context.Context) (string, error) {
	_, election, _, _ := n.cfg.Profile.raftTimeouts()
	deadline := time.Now().Add(4 * election)
	for {
		if _, id := n.raft.LeaderWithID(); id != "" {
			return string(id), nil
		}
		if time.Now().After(deadline) {
			return "", ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-n.ctx.Done():
			return "", ErrShutdown
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// forwardApply sends the unstamped command to the leader's internal service.
func (n *Node) forwardApply(ctx context.Context, leaderID string, cmd *fsmpb.Command) (*fsmpb.Response, uint64, error) {
	addr := n.members.grpcAddress(leaderID)
	if addr == "" {
		return nil, 0, fmt.Errorf("%w: address of leader %s unknown", ErrNoLeader, leaderID)
	}
	data, err := fsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	conn, err := n.peers.get(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	n.metrics.forwarded.Inc()
	out, err := urnepb.NewInternalClient(conn).Apply(ctx, &urnepb.ApplyRequest{Command: data})
	if err != nil {
		return nil, 0, forwardedError(err)
	}
	resp := &fsmpb.Response{}
	if err := unmarshalResponse(out.Response, resp); err != nil {
		return nil, 0, err
	}
	return resp, out.Index, nil
}

// applyForwarded serves Internal.Apply on the leader.
func (n *Node) applyForwarded(data []byte) (*fsmpb.Response, uint64, error) {
	cmd, err := fsm.Decode(data)
	if err != nil {
		return nil, 0, err
	}
	if err := fsm.Validate(cmd); err != nil {
		return nil, 0, err
	}
	if n.raft.State() != raft.Leader {
		return nil, 0, ErrNoLeader
	}
	resp, index, err := n.applyLocal(cmd)
	if errors.Is(err, errNotLeaderAnyMore) {
		return nil, 0, ErrNoLeader
	}
	return resp, index, err
}
