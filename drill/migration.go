package drill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urne-vote/urne/client/workload"
)

// migrationHold is how long the voters moved away are held as nonvoters on every node: longer
// than a drill, short enough that a drill that died leaves no server without its vote for long.
const migrationHold = 15 * time.Minute

// MigrationOptions configure `urne drill dc-migration`.
type MigrationOptions struct {
	Options
	// From is the datacenter whose votes and leadership move away and back (default dc1); To
	// is where leadership goes meanwhile (default dc2).
	From, To string
}

// MigrationReport is the configuration before, during and after a migration.
type MigrationReport struct {
	From          string   `json:"from"`
	To            string   `json:"to"`
	VotersBefore  []string `json:"voters_before"`
	VotersAway    []string `json:"voters_away"`
	VotersAfter   []string `json:"voters_after"`
	LeaderBefore  string   `json:"leader_before"`
	LeaderAway    string   `json:"leader_away"`
	LeaderAfter   string   `json:"leader_after"`
	ConfigChanges int      `json:"configuration_changes"`
}

// Migration moves every vote and the leadership out of datacenter From and back, one raft
// configuration change at a time, under load: leadership goes to a voter of To, then each
// voter of From is demoted to a nonvoter (it keeps its copy; autopilot is told on every node
// not to promote it back), so the quorum lives in the other sites; then each is promoted back
// and leadership returns. Each step waits for the change to commit and for the load to go on.
// The replicas and the load's history are checked at the end.
func (e *Env) Migration(ctx context.Context, o MigrationOptions) *Report {
	o.Options = o.Options.withDefaults()
	if o.From == "" {
		o.From = "dc1"
	}
	if o.To == "" {
		o.To = "dc2"
	}
	r := newReport(e, NameDCMigration, o.From+"->"+o.To)
	m := &MigrationReport{From: o.From, To: o.To}
	r.Migration = m
	return e.run(ctx, r, o.Options, func(l *load) error {
		moving, err := e.planMigration(ctx, m)
		if err != nil {
			return err
		}
		// Released however the drill ends: autopilot may then give the votes back by itself.
		defer func() { _ = e.hold(context.WithoutCancel(ctx), r, moving, 0) }()
		if err := e.migrateAway(ctx, r, o, l, moving); err != nil {
			return err
		}
		return e.migrateBack(ctx, r, o, l, moving)
	}, func(*workload.History) { e.migrationChecks(r) })
}

// planMigration reads the configuration and returns the voters of From.
func (e *Env) planMigration(ctx context.Context, m *MigrationReport) ([]string, error) {
	voters, _, err := e.suffrages(ctx)
	if err != nil {
		return nil, err
	}
	m.VotersBefore = voters
	m.LeaderBefore, _, err = e.waitLeader(ctx, e.ids(), nil, failoverWait)
	if err != nil {
		return nil, err
	}
	moving := intersect(voters, e.inDC(m.From))
	staying := intersect(voters, e.inDC(m.To))
	switch {
	case len(moving) == 0:
		return nil, fmt.Errorf("datacenter %s has no voter to move", m.From)
	case len(staying) == 0:
		return nil, fmt.Errorf("datacenter %s has no voter to take the leadership", m.To)
	case !allUp(e.ask(ctx, e.ids())):
		return nil, fmt.Errorf("not every node answers: a migration drill needs a healthy cluster")
	}
	return moving, nil
}

func (e *Env) migrateAway(ctx context.Context, r *Report, o MigrationOptions, l *load, moving []string) error {
	m := r.Migration
	if err := e.hold(ctx, r, moving, migrationHold); err != nil {
		return err
	}
	target := intersect(m.VotersBefore, e.inDC(o.To))[0]
	if err := e.moveLeadership(ctx, r, target); err != nil {
		return err
	}
	for _, id := range moving {
		if err := e.changeSuffrage(ctx, r, l, o, id, false); err != nil {
			return err
		}
	}
	voters, _, err := e.suffrages(ctx)
	if err != nil {
		return err
	}
	m.VotersAway = voters
	m.LeaderAway, _, err = e.waitLeader(ctx, e.ids(), nil, failoverWait)
	return err
}

func (e *Env) migrateBack(ctx context.Context, r *Report, o MigrationOptions, l *load, moving []string) error {
	m := r.Migration
	for _, id := range moving {
		if err := e.changeSuffrage(ctx, r, l, o, id, true); err != nil {
			return err
		}
	}
	if e.datacenter(m.LeaderBefore) == o.From {
		if err := e.moveLeadership(ctx, r, m.LeaderBefore); err != nil {
			return err
		}
	}
	voters, _, err := e.suffrages(ctx)
	if err != nil {
		return err
	}
	m.VotersAfter = voters
	m.LeaderAfter, _, err = e.waitLeader(ctx, e.ids(), nil, failoverWait)
	return err
}

// hold asks every node to keep ids nonvoters for d (0 releases them).
func (e *Env) hold(ctx context.Context, r *Report, ids []string, d time.Duration) error {
	for _, n := range e.File.Nodes {
		for _, id := range ids {
			if _, err := e.Operator.HoldNonvoter(ctx, n.GRPC, id, d); err != nil {
				return fmt.Errorf("hold %s on %s: %w", id, n.ID, err)
			}
		}
	}
	if d > 0 {
		e.step(r, "every node holds %s as nonvoters for up to %v", strings.Join(ids, ", "), d)
	} else {
		e.step(r, "holds on %s released", strings.Join(ids, ", "))
	}
	return nil
}

// moveLeadership hands leadership to target unless it leads.
func (e *Env) moveLeadership(ctx context.Context, r *Report, target string) error {
	leader, _, err := e.waitLeader(ctx, e.ids(), nil, failoverWait)
	if err != nil || leader == target {
		return err
	}
	start := time.Now()
	if _, err := e.Operator.TransferLeadership(ctx, target); err != nil {
		return fmt.Errorf("leadership transfer to %s: %w", target, err)
	}
	if _, _, err := e.waitLeader(ctx, []string{target}, nil, failoverWait); err != nil {
		return err
	}
	e.step(r, "leadership moved from %s to %s in %.0f ms", leader, target, ms(time.Since(start)))
	return nil
}

// changeSuffrage makes id a voter or a nonvoter, waits until the configuration shows it, and
// lets the load go on before the next change.
func (e *Env) changeSuffrage(ctx context.Context, r *Report, l *load, o MigrationOptions, id string, voter bool) error {
	index, err := e.Operator.ChangeSuffrage(ctx, id, voter)
	if err != nil {
		return err
	}
	err = pollUntil(ctx, failoverWait, func() error {
		voters, _, err := e.suffrages(ctx)
		if err == nil && slices.Contains(voters, id) != voter {
			err = fmt.Errorf("%s is not yet a %s", id, suffrageName(voter))
		}
		return err
	})
	if err != nil {
		return err
	}
	r.Migration.ConfigChanges++
	e.step(r, "%s is now a %s (configuration index %d)", id, suffrageName(voter), index)
	return e.settle(ctx, l, o.Settle)
}

func suffrageName(voter bool) string {
	if voter {
		return "voter"
	}
	return "nonvoter"
}

// migrationChecks: while away, From held no vote and no leadership; afterwards the voters are
// those of before.
func (e *Env) migrationChecks(r *Report) {
	m := r.Migration
	if m.VotersAway == nil {
		return
	}
	away := intersect(m.VotersAway, e.inDC(m.From))
	r.check("votes-moved", len(away) == 0 && e.datacenter(m.LeaderAway) != m.From,
		"while away the voters were %s and %s led; %s kept %d votes", strings.Join(m.VotersAway, ", "), m.LeaderAway, m.From, len(away))
	if m.VotersAfter == nil {
		return
	}
	before, after := slices.Sorted(slices.Values(m.VotersBefore)), slices.Sorted(slices.Values(m.VotersAfter))
	r.check("votes-back", slices.Equal(before, after) && (e.datacenter(m.LeaderBefore) != m.From || e.datacenter(m.LeaderAfter) == m.From),
		"voters after: %s (before: %s); leader %s (before: %s)", strings.Join(after, ", "), strings.Join(before, ", "), m.LeaderAfter, m.LeaderBefore)
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func allUp(views []view) bool {
	for _, v := range views {
		if v.err != nil {
			return false
		}
	}
	return true
}
