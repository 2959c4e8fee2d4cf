package linearize

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urne-vote/urne/client"
)

// Do runs one membership change or fault (kind KindMembership or KindFault), recording its
// call, return and outcome in h under the given action name.
func Do(h *History, kind Kind, action string, fn func() error) error {
	op := Op{Client: -100, Kind: kind, Action: action, Call: h.Now()}
	err := fn()
	op.Return, op.Outcome = h.Now(), OK
	if err != nil {
		op.Outcome, op.Err = Unknown, err.Error()
	}
	h.Add(op)
	return err
}

// WaitConverged polls every endpoint's state digest until all report the same applied index,
// and returns the last digests it saw with an error if they never agreed before ctx ended.
func WaitConverged(ctx context.Context, c *client.Client, endpoints []string) error {
	var last string
	for {
		indexes := map[uint64]bool{}
		var seen []string
		for _, ep := range endpoints {
			d, err := c.StateDigest(ctx, ep)
			if err != nil {
				seen = append(seen, fmt.Sprintf("%s: %v", ep, err))
				indexes[0], indexes[1] = true, true // unreachable: not converged
				continue
			}
			indexes[d.GetAppliedIndex()] = true
			seen = append(seen, fmt.Sprintf("%s=%d", d.GetNodeId(), d.GetAppliedIndex()))
		}
		last = strings.Join(seen, " ")
		if len(indexes) == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replicas did not converge: %w; last seen %s", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Collect waits for the replicas to converge and reads the final state of every endpoint with
// stale reads: digest, counts, the box, and the émargement of every voter the history names.
// A write still in flight when the load stopped may land meanwhile: the collection is then
// done again, until every replica was read at one same applied index or ctx ends.
func Collect(ctx context.Context, c *client.Client, endpoints []string, ops []Op) ([]Replica, error) {
	voters := map[string]bool{}
	for _, op := range ops {
		if op.Kind == KindCast {
			voters[op.Voter] = true
		}
	}
	for {
		if err := WaitConverged(ctx, c, endpoints); err != nil {
			return nil, err
		}
		var out []Replica
		for _, ep := range endpoints {
			rep, err := collectOne(ctx, c, ep, voters)
			if err != nil {
				return out, err
			}
			out = append(out, rep)
		}
		if stable(ctx, c, endpoints, out) || ctx.Err() != nil {
			return out, nil
		}
	}
}

// stable reports whether every replica was read at the same index and is still there.
func stable(ctx context.Context, c *client.Client, endpoints []string, reps []Replica) bool {
	for i, ep := range endpoints {
		d, err := c.StateDigest(ctx, ep)
		if err != nil || d.GetAppliedIndex() != reps[i].AppliedIndex || reps[i].AppliedIndex != reps[0].AppliedIndex {
			return false
		}
	}
	return true
}

func collectOne(ctx context.Context, c *client.Client, ep string, voters map[string]bool) (Replica, error) {
	d, err := c.StateDigest(ctx, ep)
	if err != nil {
		return Replica{}, fmt.Errorf("final state of %s: %w", ep, err)
	}
	rep := Replica{Node: d.GetNodeId(), AppliedIndex: d.GetAppliedIndex(), Digest: d.GetDigest()}
	on := []client.ReadOption{client.Stale(), client.OnEndpoint(ep)}
	counts, err := c.Counts(ctx, on...)
	if err != nil {
		return rep, fmt.Errorf("final counts of %s: %w", ep, err)
	}
	rep.Voters, rep.Emargements, rep.Ballots = counts.GetVoters(), counts.GetEmargements(), counts.GetBallots()
	err = c.Fingerprints(ctx, func(fp []byte) error {
		rep.Box = append(rep.Box, append([]byte(nil), fp...))
		return nil
	}, on...)
	if err != nil {
		return rep, fmt.Errorf("final box of %s: %w", ep, err)
	}
	rep.Emarged, err = emarged(ctx, c, on, voters)
	if err != nil {
		return rep, fmt.Errorf("final émargements of %s: %w", ep, err)
	}
	return rep, nil
}

// emarged reads the émargement of each voter, a few at a time.
func emarged(ctx context.Context, c *client.Client, on []client.ReadOption, voters map[string]bool) (map[string]int64, error) {
	names := make([]string, 0, len(voters))
	for v := range voters {
		names = append(names, v)
	}
	sort.Strings(names)
	var mu sync.Mutex
	out := map[string]int64{}
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for v := range work {
				resp, err := c.HasVoted(ctx, v, on...)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil && resp.GetVoted() {
					out[v] = resp.GetEmargedAtUnixNano()
				}
				mu.Unlock()
			}
		})
	}
	for _, v := range names {
		work <- v
	}
	close(work)
	wg.Wait()
	return out, firstErr
}
