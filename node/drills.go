package node

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// drillNames are the drills of `urne drill`. Each one is exported as a metric from the start,
// with a last success of 0 until it succeeds, so that an alert fires for a drill never run.
var drillNames = []string{"failover", "restore", "dc-migration", "dc-loss"}

// RecordDrill stores a drill report in the replicated state (the leader stamps its time).
func (s *operatorService) RecordDrill(ctx context.Context, req *urnepb.RecordDrillRequest) (*urnepb.RecordDrillResponse, error) {
	r := req.GetReport()
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_RECORD_DRILL, &fsmpb.RecordDrill{
		Name: r.GetName(), Ok: r.GetOk(), Summary: r.GetSummary(), StartedAtUnixNano: r.GetStartedAtUnixNano(),
		FinishedAtUnixNano: r.GetFinishedAtUnixNano(), RtoNanos: r.GetRtoNanos(), Report: r.GetReport()})
	if err != nil {
		return nil, toStatus(err)
	}
	cmd.Actor = actorFrom(ctx) // the register names who ran the drill
	resp, index, err := s.n.Propose(ctx, cmd)
	if err == nil {
		err = responseError(resp)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.RecordDrillResponse{Index: index}, nil
}

// DrillStatus lists every drill's record.
func (s *operatorService) DrillStatus(ctx context.Context, req *urnepb.DrillStatusRequest) (*urnepb.DrillStatusResponse, error) {
	if err := s.n.ReadBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, toStatus(err)
	}
	recs, index, err := s.n.fsm.Drills()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &urnepb.DrillStatusResponse{Index: index}
	for _, r := range recs {
		out.Drills = append(out.Drills, drillRecord(r))
	}
	return out, nil
}

func drillRecord(r *fsmpb.DrillRecord) *urnepb.DrillRecord {
	l := r.GetLast()
	return &urnepb.DrillRecord{
		Last: &urnepb.DrillReport{Name: l.GetName(), Ok: l.GetOk(), Summary: l.GetSummary(), StartedAtUnixNano: l.GetStartedAtUnixNano(),
			FinishedAtUnixNano: l.GetFinishedAtUnixNano(), RtoNanos: l.GetRtoNanos(), Report: l.GetReport()},
		LastRecordedAtUnixNano: r.LastRecordedAtUnixNano, LastSuccessAtUnixNano: r.LastSuccessAtUnixNano,
		LastSuccessRtoNanos: r.LastSuccessRtoNanos, Runs: r.Runs, Failures: r.Failures,
	}
}

// drillCollector exports the drill records of the local replica at every scrape: every node
// gives the same values once it has applied the same entries.
type drillCollector struct {
	n       *Node
	success *prometheus.Desc
	rto     *prometheus.Desc
	ok      *prometheus.Desc
}

func newDrillCollector(n *Node) *drillCollector {
	return &drillCollector{n: n,
		success: prometheus.NewDesc("urne_drill_last_success_timestamp_seconds",
			"When the drill last succeeded (leader time when its report was stored); 0 if it never did.", []string{"drill"}, nil),
		rto: prometheus.NewDesc("urne_drill_last_rto_seconds",
			"Worst recovery time (to the first acknowledged write) measured by the drill's last successful run.", []string{"drill"}, nil),
		ok: prometheus.NewDesc("urne_drill_last_run_ok",
			"1 if the drill's last run succeeded, 0 if it failed.", []string{"drill"}, nil),
	}
}

func (c *drillCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.success
	ch <- c.rto
	ch <- c.ok
}

func (c *drillCollector) Collect(ch chan<- prometheus.Metric) {
	recs, _, err := c.n.fsm.Drills()
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, r := range recs {
		name := r.GetLast().GetName()
		seen[name] = true
		ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, float64(r.LastSuccessAtUnixNano)/1e9, name)
		ch <- prometheus.MustNewConstMetric(c.ok, prometheus.GaugeValue, b2f(r.GetLast().GetOk()), name)
		if r.LastSuccessAtUnixNano > 0 {
			ch <- prometheus.MustNewConstMetric(c.rto, prometheus.GaugeValue, float64(r.LastSuccessRtoNanos)/1e9, name)
		}
	}
	for _, name := range drillNames {
		if !seen[name] {
			ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, 0, name)
		}
	}
}
