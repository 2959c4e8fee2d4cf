package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urne-vote/urne/client"
)

// Check names one property Verify checks.
type Check string

const (
	// CheckReceipt: an acknowledged receipt carries the SHA-256 of the ballot sent.
	CheckReceipt Check = "receipt"
	// CheckAckedPresent: every acknowledged ballot is in every node's box.
	CheckAckedPresent Check = "acked-present"
	// CheckEmargements: every node holds as many émargements as ballots.
	CheckEmargements Check = "ballots-equal-emargements"
	// CheckBallotCount: acked ≤ ballots ≤ acked + unknown on every node.
	CheckBallotCount Check = "ballot-count"
	// CheckForeignBallot: every ballot in a box was sent by this run.
	CheckForeignBallot Check = "foreign-ballot"
	// CheckConvergence: the nodes reach the same applied index.
	CheckConvergence Check = "convergence"
	// CheckAgreement: the nodes have the same state digest at the same applied index.
	CheckAgreement Check = "agreement"
	// CheckRead: a node answered the reads Verify needs.
	CheckRead Check = "read"
)

// convergenceTimeout bounds the wait for equal applied indexes in Verify.
var convergenceTimeout = 30 * time.Second

// maxDetailsPerCheck bounds the lines one node contributes to one check; the rest is summed up.
const maxDetailsPerCheck = 20

// Violation is one broken property, in plain words.
type Violation struct {
	Check    Check
	Endpoint string // the node concerned; "" for the history itself
	Detail   string
}

func (v Violation) String() string {
	if v.Endpoint == "" {
		return fmt.Sprintf("%s: %s", v.Check, v.Detail)
	}
	return fmt.Sprintf("%s: node %s: %s", v.Check, v.Endpoint, v.Detail)
}

// NodeState is what Verify read from one node.
type NodeState struct {
	Endpoint     string
	NodeID       string
	AppliedIndex uint64
	Digest       []byte
	Voters       uint64
	Emargements  uint64
	Ballots      uint64
}

// Report is the result of Verify.
type Report struct {
	Acked, Failed, Unknown int
	Nodes                  []NodeState
	Violations             []Violation
}

// OK reports whether no property is broken.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Has reports whether some violation is of check.
func (r Report) Has(check Check) bool {
	for _, v := range r.Violations {
		if v.Check == check {
			return true
		}
	}
	return false
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d acknowledged, %d failed, %d unknown casts; %d nodes read\n", r.Acked, r.Failed, r.Unknown, len(r.Nodes))
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "  %s (%s): applied %d, %d voters, %d émargements, %d ballots, digest %.16x\n",
			n.NodeID, n.Endpoint, n.AppliedIndex, n.Voters, n.Emargements, n.Ballots, n.Digest)
	}
	if r.OK() {
		b.WriteString("all checks passed\n")
	}
	for _, v := range r.Violations {
		b.WriteString("VIOLATION " + v.String() + "\n")
	}
	return b.String()
}

// Verify checks the cluster against the history, reading every endpoint with stale reads: call
// it once the load has stopped and the nodes have converged (WaitConverged). It assumes the
// box held no ballot before the run. The error is set only when ctx ends; everything the
// nodes get wrong, unreachable nodes included, is a violation in the report.
func (h *History) Verify(ctx context.Context, c *client.Client, endpoints []string) (Report, error) {
	if len(endpoints) == 0 {
		return Report{}, errors.New("verify: no endpoints to read")
	}
	v := newVerifier(h)
	v.checkReceipts()
	states, err := v.agreement(ctx, c, endpoints)
	if err != nil {
		return v.report, err
	}
	for _, st := range states {
		v.checkNode(ctx, c, st)
	}
	if ctx.Err() != nil {
		return v.report, fmt.Errorf("verify: %w", ctx.Err())
	}
	return v.report, nil
}

// verifier holds the history in the shape the checks need.
type verifier struct {
	acked   []Op
	sent    map[string]bool // fingerprints of the ballots of acked and unknown casts
	report  Report
	details map[string]int // violations per check and node, to bound the report
}

func newVerifier(h *History) *verifier {
	v := &verifier{sent: map[string]bool{}, details: map[string]int{}}
	for _, op := range h.Ops() {
		switch op.Outcome {
		case OutcomeOK:
			v.acked = append(v.acked, op)
			v.sent[string(op.BallotFingerprint)] = true
			v.report.Acked++
		case OutcomeUnknown:
			v.sent[string(op.BallotFingerprint)] = true
			v.report.Unknown++
		default:
			v.report.Failed++
		}
	}
	return v
}

// violate records a violation, summing up beyond maxDetailsPerCheck for one check and node.
func (v *verifier) violate(check Check, endpoint, format string, args ...any) {
	key := string(check) + "\x00" + endpoint
	v.details[key]++
	if v.details[key] <= maxDetailsPerCheck {
		v.report.Violations = append(v.report.Violations, Violation{check, endpoint, fmt.Sprintf(format, args...)})
	}
}

// summarize adds the count of the violations left out of the report.
func (v *verifier) summarize(check Check, endpoint string) {
	if n := v.details[string(check)+"\x00"+endpoint]; n > maxDetailsPerCheck {
		v.report.Violations = append(v.report.Violations, Violation{check, endpoint,
			fmt.Sprintf("%d more violations of this check on this node are not listed (%d in all)", n-maxDetailsPerCheck, n)})
	}
}

func (v *verifier) checkReceipts() {
	for _, op := range v.acked {
		if !bytes.Equal(op.Fingerprint, op.BallotFingerprint) {
			v.violate(CheckReceipt, "", "receipt of %s (request %s) has fingerprint %x, but the ballot sent hashes to %x",
				op.VoterID, op.RequestID, op.Fingerprint, op.BallotFingerprint)
		}
	}
	v.summarize(CheckReceipt, "")
}
