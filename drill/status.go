package drill

import (
	"context"
	"slices"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Status is the state of one drill, as the cluster recorded it.
type Status struct {
	Drill   string     `json:"drill"`
	Runs    uint64     `json:"runs"`
	LastRun *time.Time `json:"last_run,omitempty"`
	LastOK  bool       `json:"last_ok"`
	// LastVerdict is the verdict of the last run.
	LastVerdict string     `json:"last_verdict,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LastRTOMillis is the worst recovery time of the last successful run.
	LastRTOMillis float64 `json:"last_rto_ms,omitempty"`
	// Overdue: no success within OverdueAfter (or never).
	Overdue bool `json:"overdue"`
	// DaysSinceSuccess is -1 when the drill never succeeded.
	DaysSinceSuccess float64 `json:"days_since_success"`
}

// StatusReport is the JSON of `urne drill status`.
type StatusReport struct {
	Index   uint64   `json:"index"`
	Drills  []Status `json:"drills"`
	Overdue []string `json:"overdue"`
}

// ReadStatus reads every drill's record from the cluster and judges which are overdue at now.
// Every drill of Names is listed, run or not.
func ReadStatus(ctx context.Context, c *client.Client, now time.Time) (*StatusReport, error) {
	resp, err := c.DrillStatus(ctx)
	if err != nil {
		return nil, err
	}
	return judgeStatus(resp, now), nil
}

func judgeStatus(resp *urnepb.DrillStatusResponse, now time.Time) *StatusReport {
	r := &StatusReport{Index: resp.GetIndex(), Overdue: []string{}}
	byName := map[string]*urnepb.DrillRecord{}
	names := slices.Clone(Names)
	for _, d := range resp.GetDrills() {
		name := d.GetLast().GetName()
		byName[name] = d
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		s := statusOf(name, byName[name], now)
		if s.Overdue {
			r.Overdue = append(r.Overdue, name)
		}
		r.Drills = append(r.Drills, s)
	}
	return r
}

func statusOf(name string, d *urnepb.DrillRecord, now time.Time) Status {
	s := Status{Drill: name, Overdue: true, DaysSinceSuccess: -1}
	if d == nil {
		return s
	}
	s.Runs, s.LastOK, s.LastVerdict = d.GetRuns(), d.GetLast().GetOk(), d.GetLast().GetSummary()
	s.LastRun = unixTime(d.GetLastRecordedAtUnixNano())
	if s.LastSuccess = unixTime(d.GetLastSuccessAtUnixNano()); s.LastSuccess != nil {
		age := now.Sub(*s.LastSuccess)
		s.DaysSinceSuccess = age.Hours() / 24
		s.Overdue = age > OverdueAfter
		s.LastRTOMillis = float64(d.GetLastSuccessRtoNanos()) / 1e6
	}
	return s
}

func unixTime(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}
