package drill

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/urne-vote/urne/client/workload"
)

// Failover modes.
const (
	ModeGraceful = "graceful"
	ModeHard     = "hard"
)

// failoverWait bounds the wait for a new leader, and for a restarted node to catch up.
const failoverWait = 60 * time.Second

// FailoverOptions configure `urne drill failover`.
type FailoverOptions struct {
	Options
	// Mode is graceful (leadership transfer) or hard (SIGKILL of the leader's process).
	Mode string
	// Count is the number of failovers in a row (default 1).
	Count int
}

// FailoverRound is one failover.
type FailoverRound struct {
	Round     int    `json:"round"`
	OldLeader string `json:"old_leader"`
	NewLeader string `json:"new_leader"`
	// NoLeaderMillis: from the transfer or kill until a surviving node leads.
	NoLeaderMillis float64 `json:"no_leader_ms"`
	// RTOMillis: from the transfer or kill until the first acknowledged write after the stall
	// (without load: the first linearizable read).
	RTOMillis float64 `json:"rto_ms"`
	// RestartMillis (hard): from starting the killed node again until it caught up.
	RestartMillis float64 `json:"restart_ms,omitempty"`

	at time.Time
}

// Failover moves leadership away from the leader Count times in a row, gracefully or by
// killing its process, under load, measuring each time without a leader and each recovery time,
// then proves from the load's history that no acknowledged write was lost (RPO = 0) and that
// no voter has two ballots.
func (e *Env) Failover(ctx context.Context, o FailoverOptions) *Report {
	o.Options = o.Options.withDefaults()
	o.Count = max(o.Count, 1)
	r := newReport(e, NameFailover, o.Mode)
	return e.run(ctx, r, o.Options, func(l *load) error {
		if o.Mode != ModeGraceful && o.Mode != ModeHard {
			return fmt.Errorf("mode %q: want %s or %s", o.Mode, ModeGraceful, ModeHard)
		}
		if o.Mode == ModeHard && e.Procs == nil {
			return ErrNoProcesses
		}
		for i := 1; i <= o.Count; i++ {
			round, err := e.failoverRound(ctx, r, o, l, i)
			r.Failovers = append(r.Failovers, round)
			if err != nil {
				return fmt.Errorf("failover %d: %w", i, err)
			}
		}
		return nil
	}, func(h *workload.History) { e.failoverChecks(r, h, o) })
}

// failoverRound lets the load run, moves leadership once and, in hard mode, restarts the
// killed node and waits until it caught up.
func (e *Env) failoverRound(ctx context.Context, r *Report, o FailoverOptions, l *load, i int) (FailoverRound, error) {
	round := FailoverRound{Round: i}
	if err := e.settle(ctx, l, o.Settle); err != nil {
		return round, err
	}
	leader, _, err := e.waitLeader(ctx, e.ids(), nil, failoverWait)
	if err != nil {
		return round, err
	}
	round.OldLeader = leader
	others := slices.DeleteFunc(e.ids(), func(id string) bool { return id == leader })
	round.at = time.Now()
	if o.Mode == ModeGraceful {
		e.step(r, "failover %d: leadership transfer away from %s", i, leader)
		if _, err := e.Operator.TransferLeadership(ctx, ""); err != nil {
			return round, fmt.Errorf("leadership transfer: %w", err)
		}
	} else {
		e.step(r, "failover %d: SIGKILL of the leader %s", i, leader)
		if err := e.Procs.Kill(leader); err != nil {
			return round, err
		}
	}
	newLeader, seen, err := e.waitLeader(ctx, others, []string{leader}, failoverWait)
	if err != nil {
		return round, err
	}
	round.NewLeader, round.NoLeaderMillis = newLeader, ms(seen.Sub(round.at))
	e.step(r, "failover %d: %s leads after %.0f ms", i, newLeader, round.NoLeaderMillis)
	if l == nil {
		rto, err := e.probeRTO(ctx, round.at, failoverWait)
		if err != nil {
			return round, err
		}
		round.RTOMillis = ms(rto)
	}
	if o.Mode == ModeHard {
		err = e.restart(ctx, r, leader, &round)
	}
	return round, err
}

// restart starts a node the drill stopped, after the hook, and waits until it caught up.
func (e *Env) restart(ctx context.Context, r *Report, id string, round *FailoverRound) error {
	if e.Hooks.NodeStopped != nil {
		if err := e.Hooks.NodeStopped(ctx, id); err != nil {
			return fmt.Errorf("hook while %s was down: %w", id, err)
		}
	}
	start := time.Now()
	if err := e.Procs.Start(ctx, id); err != nil {
		return err
	}
	if err := e.waitCaughtUp(ctx, []string{id}, failoverWait); err != nil {
		return err
	}
	if round != nil {
		round.RestartMillis = ms(time.Since(start))
	}
	e.step(r, "%s restarted and caught up in %.0f ms", id, ms(time.Since(start)))
	return nil
}

// settle lets the load acknowledge casts for a while before an action (or just waits, without
// load), so every disruption lands on a busy cluster.
func (e *Env) settle(ctx context.Context, l *load, d time.Duration) error {
	if l == nil {
		return pause(ctx, d)
	}
	if err := pause(ctx, d); err != nil {
		return err
	}
	return l.waitProgress(ctx, 10, failoverWait)
}

// failoverChecks computes each round's recovery time from the history and checks them.
func (e *Env) failoverChecks(r *Report, h *workload.History, o FailoverOptions) {
	var missing []int
	for i := range r.Failovers {
		f := &r.Failovers[i]
		var until time.Time // the next failover, or the end of the load
		if i+1 < len(r.Failovers) {
			until = r.Failovers[i+1].at
		}
		if h != nil {
			if d, ok := firstAckAfter(h.Acked(), f.at, until); ok {
				f.RTOMillis = ms(d)
			} else {
				missing = append(missing, f.Round)
			}
		}
		r.RTOMillis = max(r.RTOMillis, f.RTOMillis)
	}
	done := len(r.Failovers) == o.Count && (len(r.Failovers) == 0 || r.Failovers[len(r.Failovers)-1].NewLeader != "")
	r.check("failovers", done && len(missing) == 0, "%d of %d failovers (%s) elected a new leader; writes were acknowledged after each%s",
		len(r.Failovers), o.Count, o.Mode, missingRounds(missing))
}

func missingRounds(rounds []int) string {
	if len(rounds) == 0 {
		return ""
	}
	return fmt.Sprintf(", except after failovers %v", rounds)
}

// firstAckAfter returns how long after `at` the first write issued at or after `at` was
// acknowledged (before until, when until is set): the recovery time as a client sees it.
// Writes issued before may have been committed before the disruption, so they do not count.
func firstAckAfter(acked []workload.Op, at, until time.Time) (time.Duration, bool) {
	var first time.Time
	for _, op := range acked {
		if op.Start.Before(at) || !until.IsZero() && !op.End.Before(until) {
			continue
		}
		if first.IsZero() || op.End.Before(first) {
			first = op.End
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return first.Sub(at), true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
