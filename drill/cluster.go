package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urne-vote/urne/transport/urnepb"
)

// askTimeout bounds one question to one node.
const askTimeout = time.Second

// view is one node's answer to Node.
type view struct {
	id   string
	info *urnepb.NodeInfo
	err  error
}

func (e *Env) ids() []string {
	out := make([]string, len(e.File.Nodes))
	for i, n := range e.File.Nodes {
		out[i] = n.ID
	}
	return out
}

func (e *Env) endpoint(id string) string {
	n, _ := e.File.Node(id)
	return n.GRPC
}

func (e *Env) datacenter(id string) string {
	n, _ := e.File.Node(id)
	return n.Datacenter
}

// inDC lists the nodes of datacenter dc.
func (e *Env) inDC(dc string) []string {
	var out []string
	for _, n := range e.File.Nodes {
		if n.Datacenter == dc {
			out = append(out, n.ID)
		}
	}
	return out
}

// ask asks the nodes ids for their Node info at once.
func (e *Env) ask(ctx context.Context, ids []string) []view {
	out := make([]view, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, askTimeout)
			defer cancel()
			info, err := e.Operator.Node(ctx, e.endpoint(id))
			out[i] = view{id: id, info: info, err: err}
		})
	}
	wg.Wait()
	return out
}

// leaderAmong returns the node that says it leads in the highest term, among those answering.
func leaderAmong(views []view) string {
	var best *urnepb.NodeInfo
	for _, v := range views {
		if v.err == nil && v.info.GetRaftState() == "Leader" && (best == nil || v.info.GetTerm() > best.GetTerm()) {
			best = v.info
		}
	}
	return best.GetId()
}

// waitLeader polls the nodes ids until one of them leads (and is not excluded), and returns it
// with the time it was first seen leading.
func (e *Env) waitLeader(ctx context.Context, ids []string, exclude []string, timeout time.Duration) (string, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		views := e.ask(ctx, ids)
		if l := leaderAmong(views); l != "" && !slices.Contains(exclude, l) {
			return l, time.Now(), nil
		}
		if time.Now().After(deadline) {
			return "", time.Time{}, fmt.Errorf("no leader among %s after %v", strings.Join(ids, ", "), timeout)
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return "", time.Time{}, err
		}
	}
}

// waitCaughtUp waits until every node of ids answers and has applied at least the index the
// leader had committed when the wait began.
func (e *Env) waitCaughtUp(ctx context.Context, ids []string, timeout time.Duration) error {
	leader, _, err := e.waitLeader(ctx, e.ids(), nil, timeout)
	if err != nil {
		return err
	}
	target := e.ask(ctx, []string{leader})[0].info.GetCommitIndex()
	return pollUntil(ctx, timeout, func() error {
		for _, v := range e.ask(ctx, ids) {
			if v.err != nil {
				return fmt.Errorf("%s does not answer: %v", v.id, v.err)
			}
			if v.info.GetAppliedIndex() < target {
				return fmt.Errorf("%s applied %d of %d", v.id, v.info.GetAppliedIndex(), target)
			}
		}
		return nil
	})
}

// digestState is one node's digest.
type digestState struct {
	id     string
	index  uint64
	digest []byte
	err    error
}

// agreement waits (up to timeout) until every node answers at one applied index, and checks
// that they hold the same state there.
func (e *Env) agreement(ctx context.Context, r *Report, timeout time.Duration) {
	var states []digestState
	err := pollUntil(ctx, timeout, func() error {
		states = e.digests(ctx)
		for _, s := range states {
			if s.err != nil {
				return fmt.Errorf("%s: %v", s.id, s.err)
			}
			if s.index != states[0].index {
				return fmt.Errorf("applied indexes differ (%s)", describeDigests(states))
			}
		}
		return nil
	})
	if err != nil {
		r.check("replicas-agree", false, "the nodes did not reach one applied index: %v", err)
		return
	}
	for _, s := range states[1:] {
		if !bytes.Equal(s.digest, states[0].digest) {
			r.check("replicas-agree", false, "%s and %s hold different states at the same index %d (digests %.8x and %.8x)",
				s.id, states[0].id, s.index, s.digest, states[0].digest)
			return
		}
	}
	r.check("replicas-agree", true, "all %d nodes hold the same state at index %d (digest %.8x)", len(states), states[0].index, states[0].digest)
}

func (e *Env) digests(ctx context.Context) []digestState {
	out := make([]digestState, len(e.File.Nodes))
	var wg sync.WaitGroup
	for i, id := range e.ids() {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			d, err := e.Operator.StateDigest(ctx, e.endpoint(id))
			out[i] = digestState{id: id, index: d.GetAppliedIndex(), digest: d.GetDigest(), err: err}
		})
	}
	wg.Wait()
	return out
}

func describeDigests(states []digestState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%s=%d", s.id, s.index)
	}
	return strings.Join(parts, " ")
}

// suffrages returns the voters and nonvoters of the configuration, as the leader has it.
func (e *Env) suffrages(ctx context.Context) (voters, nonvoters []string, err error) {
	resp, err := e.Operator.Peers(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range resp.GetPeers() {
		if p.GetSuffrage() == "voter" {
			voters = append(voters, p.GetId())
		} else {
			nonvoters = append(nonvoters, p.GetId())
		}
	}
	return voters, nonvoters, nil
}

// probeRTO measures, without load, the time until a linearizable read succeeds again.
func (e *Env) probeRTO(ctx context.Context, since time.Time, timeout time.Duration) (time.Duration, error) {
	err := pollUntil(ctx, timeout, func() error {
		ctx, cancel := context.WithTimeout(ctx, askTimeout)
		defer cancel()
		_, err := e.Operator.Counts(ctx)
		return err
	})
	return time.Since(since), err
}

// pollUntil calls try every 20 ms until it succeeds or timeout passes.
func pollUntil(ctx context.Context, timeout time.Duration, try func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		if perr := pause(ctx, 20*time.Millisecond); perr != nil {
			return errors.Join(perr, err)
		}
	}
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
