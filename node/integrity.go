package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Kinds of integrity findings, the label of urne_integrity_failures_total.
const (
	kindRegister  = "register"
	kindSeal      = "seal"
	kindBox       = "ballot_box"
	kindBinary    = "binary"
	kindReplicas  = "replicas"
	kindCheckFail = "check"
)

// alertRepeat is how often a failure that does not change is mailed again.
const alertRepeat = time.Hour

// checker runs the integrity check of one node: every IntegrityInterval and on demand. One
// check runs at a time. Alerts go through the replicated outbox; fallback, when set, mails
// them straight to an SMTP relay when the cluster cannot record them (no quorum).
type checker struct {
	n        *Node
	fallback alertSender

	mu        sync.Mutex
	lastAlert string // failures last mailed
	alertedAt time.Time
	// A scheduled check reads at least budget ballots and budget register entries, from
	// where the last one stopped.
	budget       uint64
	boxNext      int    // the slice of the box
	registerNext uint64 // the register entry
	leads        func() bool
}

func newChecker(n *Node) *checker {
	var s alertSender = noSender{}
	if n.cfg.SMTP.Server != "" {
		s = smtpSender{cfg: n.cfg.SMTP}
	}
	return &checker{n: n, fallback: s, budget: fsm.ScheduledCheckBudget, leads: func() bool { return n.raft.State() == raft.Leader }}
}

// run checks every interval, with some jitter so that the nodes do not all write their
// results at the same moment.
func (c *checker) run() {
	defer c.n.wg.Done()
	interval := time.Duration(c.n.cfg.IntegrityInterval)
	for {
		wait := interval + time.Duration(rand.Int64N(int64(interval)/10+1))
		select {
		case <-c.n.ctx.Done():
			return
		case <-time.After(wait):
		}
		c.n.recordRestore(c.n.ctx)
		c.n.recordConfiguration(c.n.ctx)
		c.n.auditor.conns.flush(c.n.ctx)
		c.check(c.n.ctx, triggerScheduled)
	}
}

// triggerScheduled names the checks that run every IntegrityInterval.
const triggerScheduled = "scheduled"

// check runs every check, then publishes the result: metrics, the register, and an alert
// email when something failed.
func (c *checker) check(ctx context.Context, trigger string) *urnepb.IntegrityReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := &urnepb.IntegrityReport{NodeId: c.n.cfg.NodeID, CheckedAtUnixNano: time.Now().UnixNano(), Ok: true,
		AppliedIndex: c.n.fsm.AppliedIndex()}
	budget := c.budgetFor(trigger)
	for _, check := range []func() *urnepb.IntegrityFinding{
		func() *urnepb.IntegrityFinding { return c.checkRegister(budget) },
		c.checkSeal,
		func() *urnepb.IntegrityFinding { return c.checkBox(budget) },
		c.checkBinary,
		func() *urnepb.IntegrityFinding { return c.checkReplicas(ctx, trigger == triggerScheduled) },
	} {
		start := time.Now()
		f := check()
		c.n.auditor.metrics.integrityTime.WithLabelValues(f.Kind).Observe(time.Since(start).Seconds())
		rep.Findings = append(rep.Findings, f)
		rep.Ok = rep.Ok && f.Ok
	}
	c.publish(ctx, rep, trigger)
	return rep
}

func finding(kind string, err error, okDetail string) *urnepb.IntegrityFinding {
	if err != nil {
		return &urnepb.IntegrityFinding{Kind: kind, Detail: err.Error()}
	}
	return &urnepb.IntegrityFinding{Kind: kind, Ok: true, Detail: okDetail}
}

// budgetFor is how many ballots and register entries a check reads at least: a scheduled one
// reads parts in turn, a check on demand everything (0).
func (c *checker) budgetFor(trigger string) uint64 {
	if trigger == triggerScheduled {
		return c.budget
	}
	return 0
}

// checkRegister checks budget register entries from where the last part stopped, or the whole
// register (budget 0); either way the head record must name the last entry.
func (c *checker) checkRegister(budget uint64) *urnepb.IntegrityFinding {
	from := uint64(1)
	if budget != 0 {
		from = c.registerNext
	}
	rep, next, err := c.n.fsm.VerifyRegisterPart(c.n.auditor.trusted, from, budget)
	if err != nil {
		return finding(kindRegister, err, "")
	}
	if budget != 0 {
		c.registerNext = next
	}
	if rep.First == 1 && next == 1 {
		return finding(kindRegister, nil, fmt.Sprintf("%d entries chain, %d timestamps verify, head %s", rep.Entries, len(rep.Stamps), rep.Head))
	}
	return finding(kindRegister, nil, fmt.Sprintf("entries %d to %d chain, %d timestamps in them verify, the head record names the last entry",
		rep.First, rep.Entries, len(rep.Stamps)))
}

// checkSeal recomputes the seal over the current configuration, scrutins, lists and roll and
// compares it with the recorded one: a record edited under the seal shows here.
func (c *checker) checkSeal() *urnepb.IntegrityFinding {
	recorded, now, err := c.n.fsm.SealDigest()
	switch {
	case err != nil:
		return finding(kindSeal, err, "")
	case recorded == nil:
		return finding(kindSeal, nil, "the election is not sealed")
	case !bytes.Equal(recorded, now):
		return finding(kindSeal, fmt.Errorf("node %s: the configuration, scrutins, lists and roll hash to %x, the election was sealed as %x",
			c.n.cfg.NodeID, now, recorded), "")
	}
	return finding(kindSeal, nil, fmt.Sprintf("the configuration, scrutins, lists and roll match the seal %x", recorded))
}

// checkBox walks whole slices of the box in turn until budget ballots, or the whole box
// (budget 0).
func (c *checker) checkBox(budget uint64) *urnepb.IntegrityFinding {
	box, err := c.n.fsm.CheckBox(c.boxNext, budget)
	if err != nil {
		return finding(kindBox, err, "")
	}
	if budget != 0 {
		c.boxNext = box.Next
	}
	if box.Slices == fsm.BoxSlices {
		return finding(kindBox, nil, fmt.Sprintf("%d ballots match the running digest %x", box.Ballots, box.Computed))
	}
	return finding(kindBox, nil, fmt.Sprintf("%d ballots in %d of the %d slices of the box, from slice %d, match their running digests, which sum to the box digest %x",
		box.Ballots, box.Slices, fsm.BoxSlices, box.First, box.Stored))
}

// checkBinary compares the binary on disk with the build recorded for the election.
func (c *checker) checkBinary() *urnepb.IntegrityFinding {
	sealed, version, ok, err := c.n.fsm.SealedBuild()
	if err != nil || !ok {
		return finding(kindBinary, err, "no build recorded for the election yet")
	}
	running, err := c.n.auditor.build.BuildDigest()
	if err == nil && !bytes.Equal(running, sealed) {
		err = fmt.Errorf("node %s: the binary on disk has SHA-256 %x, the election was sealed with build %x (%s)",
			c.n.cfg.NodeID, running, sealed, version)
	}
	return finding(kindBinary, err, fmt.Sprintf("the binary matches the sealed build %x (%s)", sealed, version))
}

// publish records the result: metrics, and the register, whose entry is mailed to the bureau
// and the organizers through the outbox when the check failed.
func (c *checker) publish(ctx context.Context, rep *urnepb.IntegrityReport, trigger string) {
	m := c.n.auditor.metrics
	var failed []string
	for _, f := range rep.Findings {
		if !f.Ok {
			m.integrityFails.WithLabelValues(f.Kind).Inc()
			failed = append(failed, f.Kind+": "+f.Detail)
		}
	}
	if rep.Ok {
		m.integrityOK.Set(1)
		m.integrityLastOK.Set(float64(time.Unix(0, rep.CheckedAtUnixNano).Unix()))
	} else {
		m.integrityOK.Set(0)
		c.n.log.Error("integrity check failed", "trigger", trigger, "failures", strings.Join(failed, " | "))
	}
	ev := c.event(rep, trigger)
	key := alertKey(rep)
	alert := !rep.Ok && c.alertDue(key)
	if alert {
		ev.Notice = fsmpb.Notice_NOTICE_ALERT
	}
	_, _, err := c.n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_RECORD_EVENT, ev)
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		c.n.log.Warn("recording the integrity check in the register failed", "err", err)
		if alert {
			c.mailDirectly(ctx, rep, ev)
		}
	case alert:
		m.alerts.WithLabelValues("queued").Inc()
		c.alerted(key)
	}
}

// event is the register entry of a check: every finding, failed ones first, one per line
// of the alert email.
func (c *checker) event(rep *urnepb.IntegrityReport, trigger string) *fsmpb.RecordEvent {
	ev := &fsmpb.RecordEvent{Action: "integrity check", Object: "node " + c.n.cfg.NodeID, Outcome: "ok"}
	if rep.Ok {
		ev.Detail = boundText(fmt.Sprintf("%s check at applied index %d", trigger, rep.AppliedIndex))
		return ev
	}
	ev.Outcome = "failed"
	lines := []string{fmt.Sprintf("%s check of node %s (datacenter %s) at applied index %d", trigger, c.n.cfg.NodeID, c.n.cfg.Datacenter, rep.AppliedIndex)}
	for _, ok := range []bool{false, true} {
		for _, f := range rep.Findings {
			if f.Ok == ok {
				state := "FAILED"
				if f.Ok {
					state = "OK"
				}
				lines = append(lines, fmt.Sprintf("%s %s: %s", state, f.Kind, f.Detail))
			}
		}
	}
	ev.Detail = boundText(strings.Join(lines, " | "))
	return ev
}

// alertKey names what failed: the kinds, and the nodes blamed. Details (indexes, digests)
// change from one check to the next and do not make a failure new.
func alertKey(rep *urnepb.IntegrityReport) string {
	var parts []string
	for _, f := range rep.Findings {
		if !f.Ok {
			parts = append(parts, f.Kind+"["+strings.Join(f.Nodes, ",")+"]")
		}
	}
	return strings.Join(parts, " ")
}

// alertDue tells whether a failure is to be mailed: not if the same one was mailed less than
// alertRepeat ago.
func (c *checker) alertDue(key string) bool {
	return key != c.lastAlert || time.Since(c.alertedAt) >= alertRepeat
}

func (c *checker) alerted(key string) { c.lastAlert, c.alertedAt = key, time.Now() }

// mailDirectly sends an alert the cluster could not record to the fallback relay, if any.
func (c *checker) mailDirectly(ctx context.Context, rep *urnepb.IntegrityReport, ev *fsmpb.RecordEvent) {
	subject := fmt.Sprintf("[urne] integrity check failed on node %s (election %s), not recorded", c.n.cfg.NodeID, c.n.cfg.ElectionID)
	body := fmt.Sprintf("The cluster could not record this integrity check of node %s at %s: it is mailed directly.\n\n%s\n",
		c.n.cfg.NodeID, time.Unix(0, rep.CheckedAtUnixNano).UTC().Format(time.RFC3339), strings.ReplaceAll(ev.Detail, " | ", "\n"))
	if err := c.fallback.SendAlert(ctx, subject, body); err != nil {
		c.n.auditor.metrics.alerts.WithLabelValues("failed").Inc()
		c.n.log.Error("integrity alert not delivered", "err", err)
		return
	}
	c.n.auditor.metrics.alerts.WithLabelValues("sent").Inc()
}

// sortedKeys lists a map's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
