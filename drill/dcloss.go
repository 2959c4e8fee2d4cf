package drill

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/recovery"
)

// DCLossOptions configure `urne drill dc-loss`.
type DCLossOptions struct {
	Options
	// DC is the datacenter that is lost (default dc1).
	DC string
	// Outage is how long it stays down, counted from the kill (default 5s).
	Outage time.Duration
	// Force is given to promote-dc when the survivors have no quorum.
	Force bool
}

// DCLossReport is what happened while a datacenter was down.
type DCLossReport struct {
	DC        string   `json:"dc"`
	Lost      []string `json:"lost"`
	Survivors []string `json:"survivors"`
	// Automatic: the survivors kept a quorum; otherwise promote-dc ran.
	Automatic      bool                    `json:"automatic"`
	LeaderBefore   string                  `json:"leader_before"`
	LeaderAfter    string                  `json:"leader_after"`
	NoLeaderMillis float64                 `json:"no_leader_ms"`
	Promotion      *recovery.PromoteReport `json:"promotion,omitempty"`
	// AckedDuringOutage counts the casts acknowledged while the datacenter was down.
	AckedDuringOutage int     `json:"acked_during_outage"`
	CatchUpMillis     float64 `json:"catch_up_ms"`

	at, back, until time.Time
}

// minRunningOutage is how long the election runs without the lost datacenter, at least, once
// it has a leader again.
const minRunningOutage = 2 * time.Second

// DCLoss kills every node of a datacenter at once, under load. With a quorum left (2+2+1) it
// checks that the election goes on by itself; without (2+2) it runs promote-dc on the
// survivors. It then restarts the lost nodes, checks that they catch up (and vote again), and
// checks the load's history and the replicas.
func (e *Env) DCLoss(ctx context.Context, o DCLossOptions) *Report {
	o.Options = o.Options.withDefaults()
	if o.DC == "" {
		o.DC = "dc1"
	}
	if o.Outage <= 0 {
		o.Outage = 5 * time.Second
	}
	r := newReport(e, NameDCLoss, o.DC)
	d := &DCLossReport{DC: o.DC}
	r.DCLoss = d
	return e.run(ctx, r, o.Options, func(l *load) error {
		if e.Procs == nil {
			return ErrNoProcesses
		}
		if err := e.planLoss(ctx, d); err != nil {
			return err
		}
		if err := e.settle(ctx, l, o.Settle); err != nil {
			return err
		}
		if err := e.loseDC(ctx, r, o, l); err != nil {
			return err
		}
		return e.bringBack(ctx, r, d)
	}, func(h *workload.History) { e.lossChecks(r, h) })
}

// planLoss splits the nodes and tells whether the survivors keep a quorum of the voters.
func (e *Env) planLoss(ctx context.Context, d *DCLossReport) error {
	d.Lost = e.inDC(d.DC)
	d.Survivors = slices.DeleteFunc(e.ids(), func(id string) bool { return slices.Contains(d.Lost, id) })
	if len(d.Lost) == 0 || len(d.Survivors) == 0 {
		return fmt.Errorf("datacenter %s: %d nodes in it, %d outside; nothing to lose or nobody left", d.DC, len(d.Lost), len(d.Survivors))
	}
	voters, _, err := e.suffrages(ctx)
	if err != nil {
		return err
	}
	d.Automatic = 2*len(intersect(voters, d.Survivors)) > len(voters)
	d.LeaderBefore, _, err = e.waitLeader(ctx, e.ids(), nil, failoverWait)
	return err
}

// loseDC kills the datacenter and waits for the election to go on, promoting the survivors
// when they have no quorum, then keeps it down for the rest of the outage.
func (e *Env) loseDC(ctx context.Context, r *Report, o DCLossOptions, l *load) error {
	d := r.DCLoss
	d.at = time.Now()
	for _, id := range d.Lost {
		if err := e.Procs.Kill(id); err != nil {
			return err
		}
	}
	e.step(r, "datacenter %s lost: killed %v", d.DC, d.Lost)
	if !d.Automatic {
		if err := e.promote(ctx, r, o); err != nil {
			return err
		}
	}
	leader, seen, err := e.waitLeader(ctx, d.Survivors, d.Lost, failoverWait)
	if err != nil {
		return fmt.Errorf("the election did not go on without %s: %w", d.DC, err)
	}
	if d.Promotion != nil {
		seen = d.Promotion.LeaderAt
	}
	d.LeaderAfter, d.NoLeaderMillis = leader, ms(seen.Sub(d.at))
	e.step(r, "%s leads %.0f ms after the loss", leader, d.NoLeaderMillis)
	if l == nil {
		rto, err := e.probeRTO(ctx, d.at, failoverWait)
		if err != nil {
			return err
		}
		r.RTOMillis = ms(rto)
	}
	end := d.at.Add(o.Outage)
	if minEnd := time.Now().Add(minRunningOutage); end.Before(minEnd) {
		end = minEnd
	}
	if err := pause(ctx, time.Until(end)); err != nil {
		return err
	}
	d.back = time.Now()
	return nil
}

// promote runs promote-dc on the survivors' datacenter.
func (e *Env) promote(ctx context.Context, r *Report, o DCLossOptions) error {
	d := r.DCLoss
	dcs := map[string]bool{}
	for _, id := range d.Survivors {
		dcs[e.datacenter(id)] = true
	}
	if len(dcs) != 1 {
		return fmt.Errorf("the survivors have no quorum and span %d datacenters: promote-dc cannot choose one", len(dcs))
	}
	survivorDC := e.datacenter(d.Survivors[0])
	e.step(r, "the survivors have no quorum: promoting %s", survivorDC)
	p, err := recovery.Promote(ctx, recovery.PromoteOptions{Dir: e.Dir, File: e.File, DC: survivorDC, Force: o.Force,
		Client: e.Operator, Procs: e.Procs, Logf: e.Logf})
	d.Promotion = p
	if err != nil {
		return fmt.Errorf("promote-dc %s: %w", survivorDC, err)
	}
	e.step(r, "%s promoted: %s recovered alone, voters %v", survivorDC, p.Chosen, p.Voters)
	return nil
}

// bringBack restarts the lost datacenter and waits until its nodes caught up and vote again.
func (e *Env) bringBack(ctx context.Context, r *Report, d *DCLossReport) error {
	for _, id := range d.Lost {
		if e.Hooks.NodeStopped != nil {
			if err := e.Hooks.NodeStopped(ctx, id); err != nil {
				return fmt.Errorf("hook while %s was down: %w", id, err)
			}
		}
	}
	start := time.Now()
	for _, id := range d.Lost {
		if err := e.Procs.Start(ctx, id); err != nil {
			return err
		}
	}
	if err := e.waitCaughtUp(ctx, d.Lost, failoverWait); err != nil {
		return fmt.Errorf("%s did not catch up: %w", d.DC, err)
	}
	d.CatchUpMillis = ms(time.Since(start))
	e.step(r, "%s restarted and caught up in %.0f ms", d.DC, d.CatchUpMillis)
	if err := e.waitVoting(ctx, d.Lost); err != nil {
		return err
	}
	d.until = time.Now()
	return nil
}

// waitVoting waits until ids whose role votes are voters of the configuration again.
func (e *Env) waitVoting(ctx context.Context, ids []string) error {
	var want []string
	for _, id := range ids {
		if n, _ := e.File.Node(id); n.Role != "nonvoter" {
			want = append(want, id)
		}
	}
	return pollUntil(ctx, failoverWait, func() error {
		voters, _, err := e.suffrages(ctx)
		if err != nil {
			return err
		}
		if missing := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return slices.Contains(voters, id) }); len(missing) > 0 {
			return fmt.Errorf("%v do not vote again yet", missing)
		}
		return nil
	})
}

func (e *Env) lossChecks(r *Report, h *workload.History) {
	d := r.DCLoss
	if d.LeaderAfter == "" {
		return
	}
	how := "the survivors kept a quorum"
	if !d.Automatic {
		how = "promote-dc made the survivors a cluster"
	}
	if h != nil {
		if rto, ok := firstAckAfter(h.Acked(), d.at, d.until); ok {
			r.RTOMillis = ms(rto)
		}
		for _, op := range h.Acked() {
			if op.End.After(d.at.Add(time.Duration(r.RTOMillis*1e6))) && op.End.Before(d.back) {
				d.AckedDuringOutage++
			}
		}
	}
	running := h == nil || d.AckedDuringOutage > 0
	r.check("election-kept-running", running, "%s: %s led %.0f ms after the loss, %d casts acknowledged while %s was down, first write %.0f ms after the loss",
		how, d.LeaderAfter, d.NoLeaderMillis, d.AckedDuringOutage, d.DC, r.RTOMillis)
	if d.CatchUpMillis > 0 {
		r.check("caught-up", true, "%v restarted, caught up and vote again (%.0f ms)", d.Lost, d.CatchUpMillis)
	}
}
