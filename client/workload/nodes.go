package workload

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/urnepb"
)

// agreement polls the state digest of every node until the applied indexes of those that
// answer are equal (for at most convergenceTimeout), then checks that their digests are equal.
// It returns the state of every node that answered; the error is set only when ctx ends.
func (v *verifier) agreement(ctx context.Context, c *client.Client, endpoints []string) ([]*NodeState, error) {
	pollCtx, cancel := context.WithTimeout(ctx, convergenceTimeout)
	defer cancel()
	var states []*NodeState
	var failures []string
	err := poll(pollCtx, func() bool {
		// A node that does not answer is reported below; the others are still compared. The
		// reads run on ctx: the wait for convergence bounds the rounds, not a read in flight,
		// which a slow node would otherwise fail as unreadable.
		states, failures = readDigests(ctx, c, endpoints)
		return sameIndex(states)
	})
	if ctx.Err() != nil {
		return states, fmt.Errorf("verify: %w", ctx.Err())
	}
	for _, f := range failures {
		v.violate(CheckRead, "", "%s", f)
	}
	if err != nil {
		v.violate(CheckConvergence, "", "applied indexes still differ after %s: %s", convergenceTimeout, describeIndexes(states))
	} else {
		v.compareDigests(states)
	}
	return states, nil
}

func readDigests(ctx context.Context, c *client.Client, endpoints []string) ([]*NodeState, []string) {
	var states []*NodeState
	var failures []string
	for _, ep := range endpoints {
		d, err := c.StateDigest(ctx, ep)
		if err != nil {
			failures = append(failures, fmt.Sprintf("node %s did not give its state digest: %v", ep, err))
			continue
		}
		states = append(states, &NodeState{Endpoint: ep, NodeID: d.GetNodeId(), AppliedIndex: d.GetAppliedIndex(), Digest: d.GetDigest()})
	}
	return states, failures
}

func sameIndex(states []*NodeState) bool {
	for _, s := range states {
		if s.AppliedIndex != states[0].AppliedIndex {
			return false
		}
	}
	return true
}

func describeIndexes(states []*NodeState) string {
	var parts []string
	for _, s := range states {
		parts = append(parts, fmt.Sprintf("%s=%d", s.NodeID, s.AppliedIndex))
	}
	return strings.Join(parts, " ")
}

func (v *verifier) compareDigests(states []*NodeState) {
	if len(states) == 0 {
		return
	}
	ref := states[0]
	for _, s := range states[1:] {
		if !bytes.Equal(s.Digest, ref.Digest) {
			v.violate(CheckAgreement, s.Endpoint, "state digest %x of %s differs from %x of %s at the same applied index %d",
				s.Digest, s.NodeID, ref.Digest, ref.NodeID, s.AppliedIndex)
		}
	}
}

// checkNode reads the counts and the box of one node with stale reads and checks them
// against the history.
func (v *verifier) checkNode(ctx context.Context, c *client.Client, st *NodeState) {
	ep := st.Endpoint
	counts, err := c.Counts(ctx, client.Stale(), client.OnEndpoint(ep))
	if err != nil {
		v.violate(CheckRead, ep, "reading counts: %v", err)
		return
	}
	st.Voters, st.Emargements, st.Ballots = counts.GetVoters(), counts.GetEmargements(), counts.GetBallots()
	v.report.Nodes = append(v.report.Nodes, *st)
	box := map[string]bool{}
	err = c.Fingerprints(ctx, func(fp []byte) error {
		box[string(fp)] = true
		return nil
	}, client.Stale(), client.OnEndpoint(ep))
	if err != nil {
		v.violate(CheckRead, ep, "listing the box: %v", err)
		return
	}
	v.checkCounts(st)
	v.checkBox(ep, box)
}

func (v *verifier) checkCounts(st *NodeState) {
	acked, unknown := uint64(v.report.Acked), uint64(v.report.Unknown)
	if st.Ballots != st.Emargements {
		v.violate(CheckEmargements, st.Endpoint, "holds %d ballots but %d émargements", st.Ballots, st.Emargements)
	}
	if st.Ballots < acked {
		v.violate(CheckBallotCount, st.Endpoint, "holds %d ballots, fewer than the %d acknowledged casts: acknowledged ballots were lost", st.Ballots, acked)
	}
	if st.Ballots > acked+unknown {
		v.violate(CheckBallotCount, st.Endpoint, "holds %d ballots, more than the %d acknowledged plus %d unknown casts: "+
			"a voter has two ballots or a failed cast was recorded", st.Ballots, acked, unknown)
	}
}

func (v *verifier) checkBox(ep string, box map[string]bool) {
	for _, op := range v.acked {
		if !box[string(op.BallotFingerprint)] {
			v.violate(CheckAckedPresent, ep, "the acknowledged ballot of %s (fingerprint %x) is not in the box", op.VoterID, op.BallotFingerprint)
		}
	}
	v.summarize(CheckAckedPresent, ep)
	for _, fp := range slices.Sorted(maps.Keys(box)) {
		if !v.sent[fp] {
			v.violate(CheckForeignBallot, ep, "the box holds ballot %x, which this run never sent", fp)
		}
	}
	v.summarize(CheckForeignBallot, ep)
}

// WaitConverged polls Node on every endpoint until all of them answer, report the same applied
// index and name the same leader. It fails when ctx ends first, saying what it saw last.
func WaitConverged(ctx context.Context, c *client.Client, endpoints []string) error {
	last := "no answer yet"
	err := poll(ctx, func() bool {
		done, seen := converged(ctx, c, endpoints)
		if ctx.Err() == nil { // an observation cut short by ctx says nothing about the nodes
			last = seen
		}
		return done
	})
	if err != nil {
		return fmt.Errorf("nodes did not converge: %w; last seen: %s", err, last)
	}
	return nil
}

// converged reports whether the nodes agree on applied index and leader, and what each said.
func converged(ctx context.Context, c *client.Client, endpoints []string) (bool, string) {
	var seen []string
	var infos []*urnepb.NodeInfo
	for _, ep := range endpoints {
		info, err := c.Node(ctx, ep)
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s unreachable (%v)", ep, err))
			continue
		}
		infos = append(infos, info)
		seen = append(seen, fmt.Sprintf("%s applied %d leader %q", info.GetId(), info.GetAppliedIndex(), info.GetLeaderId()))
	}
	ok := len(infos) == len(endpoints) && infos[0].GetLeaderId() != ""
	for _, info := range infos {
		ok = ok && info.GetAppliedIndex() == infos[0].GetAppliedIndex() && info.GetLeaderId() == infos[0].GetLeaderId()
	}
	return ok, strings.Join(seen, "; ")
}

// poll calls try until it returns true, waiting a little longer each time, until ctx ends.
func poll(ctx context.Context, try func() bool) error {
	delay := 20 * time.Millisecond
	for !try() {
		if err := pause(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
	return nil
}
