package drill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
)

// Claims the load's history proves, and the workload checks behind each.
const (
	checkRPO       = "rpo-zero"
	checkOneBallot = "one-ballot-per-voter"
)

var claimOf = map[workload.Check]string{
	workload.CheckAckedPresent:  checkRPO,
	workload.CheckRead:          checkRPO,
	workload.CheckConvergence:   checkRPO,
	workload.CheckAgreement:     checkRPO,
	workload.CheckReceipt:       checkOneBallot,
	workload.CheckEmargements:   checkOneBallot,
	workload.CheckBallotCount:   checkOneBallot,
	workload.CheckForeignBallot: checkOneBallot,
}

// checkLoad stops the load, waits for the nodes to converge, and checks the history against
// every node: no acknowledged cast lost and no ballot present before the drill lost (RPO = 0),
// and no voter with two ballots.
func (e *Env) checkLoad(ctx context.Context, r *Report, l *load) *workload.History {
	h := l.stop()
	if e.Hooks.BeforeChecks != nil {
		if err := e.Hooks.BeforeChecks(ctx, h); err != nil {
			r.check("hook", false, "%v", err)
		}
	}
	r.Load = l.report(h)
	endpoints := e.File.Endpoints()
	cctx, cancel := context.WithTimeout(ctx, convergenceWait)
	_ = workload.WaitConverged(cctx, e.Operator, endpoints) // Verify reports what did not converge
	cancel()
	rep, err := h.Verify(ctx, e.Operator, endpoints)
	if err != nil {
		r.check(checkRPO, false, "the history could not be checked: %v", err)
		return h
	}
	found := map[string][]string{}
	for _, v := range rep.Violations {
		// Verify assumes an empty box before the run; the baseline checks below replace these two.
		if len(l.baseline) > 0 && (v.Check == workload.CheckForeignBallot || v.Check == workload.CheckBallotCount) {
			continue
		}
		claim := claimOf[v.Check]
		found[claim] = append(found[claim], e.describe(v))
	}
	e.checkBaseline(ctx, h, l.baseline, found)
	for _, claims := range found {
		r.Load.Violations = append(r.Load.Violations, claims...)
	}
	r.check(checkRPO, len(found[checkRPO]) == 0, "%s", orOK(found[checkRPO],
		fmt.Sprintf("all %d acknowledged casts, and the %d ballots in the box before the drill, are on every one of the %d nodes",
			rep.Acked, len(l.baseline), len(endpoints))))
	r.check(checkOneBallot, len(found[checkOneBallot]) == 0, "%s", orOK(found[checkOneBallot],
		"every node holds as many émargements as ballots, and only ballots this drill sent or found"))
	return h
}

// checkBaseline reads every node's box: the ballots there before the drill must all still be
// there, and the others must be this run's, no more than it may have recorded.
func (e *Env) checkBaseline(ctx context.Context, h *workload.History, baseline map[string]bool, found map[string][]string) {
	if len(baseline) == 0 {
		return
	}
	sent := map[string]bool{}
	acked, unknown := 0, 0
	for _, op := range h.Ops() {
		switch op.Outcome {
		case workload.OutcomeOK:
			acked++
			sent[string(op.BallotFingerprint)] = true
		case workload.OutcomeUnknown:
			unknown++
			sent[string(op.BallotFingerprint)] = true
		}
	}
	for _, n := range e.File.Nodes {
		box, err := e.box(ctx, client.Stale(), client.OnEndpoint(n.GRPC))
		if err != nil {
			found[checkRPO] = append(found[checkRPO], fmt.Sprintf("%s: its box could not be listed: %v", n.ID, err))
			continue
		}
		lost, foreign, fresh := 0, 0, 0
		for fp := range baseline {
			if !box[fp] {
				lost++
			}
		}
		for fp := range box {
			if !baseline[fp] {
				fresh++
				if !sent[fp] {
					foreign++
				}
			}
		}
		if lost > 0 {
			found[checkRPO] = append(found[checkRPO], fmt.Sprintf("%s has lost %d of the %d ballots that were in the box before the drill", n.ID, lost, len(baseline)))
		}
		if foreign > 0 || fresh > acked+unknown {
			found[checkOneBallot] = append(found[checkOneBallot], fmt.Sprintf("%s holds %d new ballots (%d not sent by this drill) for %d acknowledged and %d unknown casts",
				n.ID, fresh, foreign, acked, unknown))
		}
	}
}

// describe names the node of a violation by id rather than address.
func (e *Env) describe(v workload.Violation) string {
	for _, n := range e.File.Nodes {
		if n.GRPC == v.Endpoint {
			return fmt.Sprintf("%s: %s", n.ID, v.Detail)
		}
	}
	return v.String()
}

func orOK(problems []string, ok string) string {
	if len(problems) == 0 {
		return ok
	}
	if len(problems) > 5 {
		return strings.Join(problems[:5], "; ") + fmt.Sprintf("; and %d more", len(problems)-5)
	}
	return strings.Join(problems, "; ")
}

// report summarizes the load.
func (l *load) report(h *workload.History) *LoadReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &LoadReport{Blocks: l.blocks, Concurrency: l.o.Concurrency, Baseline: len(l.baseline), Exhausted: l.exhausted, Violations: []string{}}
	for _, op := range h.Ops() {
		switch op.Outcome {
		case workload.OutcomeOK:
			r.Acked++
		case workload.OutcomeFailed:
			r.Failed++
		default:
			r.Unknown++
		}
	}
	if d := time.Since(l.started).Seconds(); d > 0 {
		r.PerSecond = float64(r.Acked) / d
	}
	return r
}
