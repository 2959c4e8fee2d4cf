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

	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Kinds of integrity findings, the label of urne_integrity_failures_total.
const (
	kindRegister  = "register"
	kindBox       = "ballot_box"
	kindBinary    = "binary"
	kindReplicas  = "replicas"
	kindCheckFail = "check"
)

// alertRepeat is how often a failure that does not change is mailed again.
const alertRepeat = time.Hour

// checker runs the integrity check of one node: every IntegrityInterval and on demand. One
// check runs at a time.
type checker struct {
	n      *Node
	sender alertSender

	mu        sync.Mutex
	lastAlert string // failures last mailed
	alertedAt time.Time
}

func newChecker(n *Node) *checker {
	var s alertSender = noSender{}
	if n.cfg.SMTP.Server != "" {
		s = smtpSender{cfg: n.cfg.SMTP}
	}
	return &checker{n: n, sender: s}
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
		c.check(c.n.ctx, "scheduled")
	}
}

// check runs every check, then publishes the result: metrics, the register, and an alert
// email when something failed.
func (c *checker) check(ctx context.Context, trigger string) *urnepb.IntegrityReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := &urnepb.IntegrityReport{NodeId: c.n.cfg.NodeID, CheckedAtUnixNano: time.Now().UnixNano(), Ok: true,
		AppliedIndex: c.n.fsm.AppliedIndex()}
	rep.Findings = []*urnepb.IntegrityFinding{c.checkRegister(), c.checkBox(), c.checkBinary(), c.checkReplicas(ctx)}
	for _, f := range rep.Findings {
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

func (c *checker) checkRegister() *urnepb.IntegrityFinding {
	rep, err := c.n.fsm.VerifyRegister(c.n.auditor.trusted)
	if err != nil {
		return finding(kindRegister, err, "")
	}
	return finding(kindRegister, nil, fmt.Sprintf("%d entries chain, %d timestamps verify, head %s", rep.Entries, len(rep.Stamps), rep.Head))
}

func (c *checker) checkBox() *urnepb.IntegrityFinding {
	box, err := c.n.fsm.CheckBox()
	return finding(kindBox, err, fmt.Sprintf("%d ballots match the running digest %x", box.Ballots, box.Computed))
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

// publish records the result and alerts on failure.
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
	c.record(ctx, rep, trigger, failed)
	if !rep.Ok {
		c.alert(ctx, rep, failed)
	}
}

// record writes the result into the register.
func (c *checker) record(ctx context.Context, rep *urnepb.IntegrityReport, trigger string, failed []string) {
	ev := &fsmpb.RecordEvent{Action: "integrity check", Object: "node " + c.n.cfg.NodeID, Outcome: "ok",
		Detail: boundText(fmt.Sprintf("%s check at applied index %d", trigger, rep.AppliedIndex))}
	if !rep.Ok {
		ev.Outcome = "failed"
		ev.Detail = boundText(trigger + " check: " + strings.Join(failed, " | "))
	}
	if _, _, err := c.n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_RECORD_EVENT, ev); err != nil && !errors.Is(err, context.Canceled) {
		c.n.log.Warn("recording the integrity check in the register failed", "err", err)
	}
}

// alert mails the failures, unless the same failures were mailed less than alertRepeat ago.
func (c *checker) alert(ctx context.Context, rep *urnepb.IntegrityReport, failed []string) {
	summary := strings.Join(failed, "\n")
	if summary == c.lastAlert && time.Since(c.alertedAt) < alertRepeat {
		return
	}
	subject := fmt.Sprintf("[urne] integrity check failed on node %s (election %s)", c.n.cfg.NodeID, c.n.cfg.ElectionID)
	var body strings.Builder
	fmt.Fprintf(&body, "The integrity check of node %s (datacenter %s) of election %s failed at %s, applied index %d.\n\n",
		c.n.cfg.NodeID, c.n.cfg.Datacenter, c.n.cfg.ElectionID, time.Unix(0, rep.CheckedAtUnixNano).UTC().Format(time.RFC3339), rep.AppliedIndex)
	for _, f := range rep.Findings {
		state := "OK    "
		if !f.Ok {
			state = "FAILED"
		}
		fmt.Fprintf(&body, "%s %s: %s\n", state, f.Kind, f.Detail)
	}
	if err := c.sender.SendAlert(ctx, subject, body.String()); err != nil {
		c.n.auditor.metrics.alerts.WithLabelValues("failed").Inc()
		c.n.log.Error("integrity alert not delivered", "err", err)
		return
	}
	c.n.auditor.metrics.alerts.WithLabelValues("sent").Inc()
	c.lastAlert, c.alertedAt = summary, time.Now()
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
