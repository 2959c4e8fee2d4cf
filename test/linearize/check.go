package linearize

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Checks a history can fail.
const (
	// CheckLinearizable: a voter's casts and reads admit no order consistent with real time
	// and the model (a lost acknowledged cast, a stale read, a second ballot accepted...).
	CheckLinearizable = "linearizable"
	// CheckCountBounds: a linearizable count is below the casts acknowledged before it
	// started, or above the casts sent before it ended.
	CheckCountBounds = "count-bounds"
	// CheckMonotonic: a linearizable read saw less (ballots, phase, index) than one that
	// ended before it started.
	CheckMonotonic = "monotonic"
	// CheckEmargements: émargement count differs from ballot count.
	CheckEmargements = "emargements-equal-ballots"
	// CheckRoll: the number of voters changed during the run.
	CheckRoll = "roll"
	// CheckAckedPresent: an acknowledged ballot is missing from a replica's box.
	CheckAckedPresent = "acked-present"
	// CheckOneBallot: a voter has two ballots in a replica's box.
	CheckOneBallot = "one-ballot-per-voter"
	// CheckForeignBallot: a replica's box holds a ballot the run never sent.
	CheckForeignBallot = "foreign-ballot"
	// CheckDigests: replicas at the same applied index hold different states, or never
	// reached the same index.
	CheckDigests = "digests-equal"
	// CheckTimeout: porcupine ran out of time on a voter; the history was not fully checked.
	CheckTimeout = "checker-timeout"
)

// Violation is one broken promise.
type Violation struct {
	Check  string
	Detail string
}

// Report is the verdict on a history and the final replicas.
type Report struct {
	Tally      Tally
	Voters     int
	Replicas   int
	Violations []Violation
}

// OK reports whether nothing was violated.
func (r Report) OK() bool { return len(r.Violations) == 0 }

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d operations (%d ok, %d failed, %d unknown), %d voters, %d replicas, %d violations\n",
		r.Tally.Ops, r.Tally.OK, r.Tally.Failed, r.Tally.Unknown, r.Voters, r.Replicas, len(r.Violations))
	for i, v := range r.Violations {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Violations)-i)
			break
		}
		fmt.Fprintf(&b, "  %s: %s\n", v.Check, v.Detail)
	}
	return b.String()
}

func (r *Report) violate(check, format string, args ...any) {
	r.Violations = append(r.Violations, Violation{Check: check, Detail: fmt.Sprintf(format, args...)})
}

// Options tune Check.
type Options struct {
	// Timeout bounds porcupine on one voter; zero means 10 seconds.
	Timeout time.Duration
}

// Check runs every check on a history and on the final state of the replicas (read after
// the faults healed; none means the history alone is checked).
func Check(ops []Op, replicas []Replica, opts Options) Report {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	r := Report{Tally: TallyOf(ops), Replicas: len(replicas)}
	final := finalOps(ops, replicas, &r)
	perVoter := byVoter(append(relevant(ops), final...))
	r.Voters = len(perVoter)
	checkVoters(perVoter, opts.Timeout, &r)
	checkCounts(ops, &r)
	checkReplicas(ops, replicas, &r)
	return r
}

// relevant keeps the voter operations that carry information: unanswered reads say nothing.
func relevant(ops []Op) []Op {
	var out []Op
	for _, op := range ops {
		switch {
		case op.Kind == KindCast:
			out = append(out, op)
		case op.Kind == KindHasVoted && op.Outcome == OK && !op.Stale:
			out = append(out, op)
		}
	}
	return out
}

func byVoter(ops []Op) map[string][]Op {
	out := map[string][]Op{}
	for _, op := range ops {
		out[op.Voter] = append(out[op.Voter], op)
	}
	return out
}

// checkVoters runs porcupine on each voter's operations. An operation of unknown outcome may
// take effect at any time after its call, so its return is put after every other.
func checkVoters(perVoter map[string][]Op, timeout time.Duration, r *Report) {
	model := voterModel.ToModel()
	voters := make([]string, 0, len(perVoter))
	for v := range perVoter {
		voters = append(voters, v)
	}
	sort.Strings(voters)
	for _, v := range voters {
		history := porcupineOps(perVoter[v])
		res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
		switch res {
		case porcupine.Illegal:
			r.violate(CheckLinearizable, "voter %s: no linearization of its %d operations:\n%s", v, len(history), describe(perVoter[v], info))
		case porcupine.Unknown:
			r.violate(CheckTimeout, "voter %s: porcupine gave up after %s on %d operations", v, timeout, len(history))
		}
	}
}

func porcupineOps(ops []Op) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, int64(op.Return))
	}
	out := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		ret := int64(op.Return)
		if op.Kind == KindCast && op.Outcome == Unknown {
			ret = end + 1
		}
		out[i] = porcupine.Operation{ClientId: op.Client, Input: op, Output: op, Call: int64(op.Call), Return: ret}
	}
	return out
}

// describe lists a voter's operations and the longest order porcupine could explain.
func describe(ops []Op, info porcupine.LinearizationInfo) string {
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "    %s\n", op)
	}
	longest := []int{}
	for _, partial := range info.PartialLinearizations() {
		for _, l := range partial {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	fmt.Fprintf(&b, "    longest explainable prefix: %d operations", len(longest))
	for _, i := range longest {
		if i < len(ops) {
			fmt.Fprintf(&b, "\n      %s", ops[i])
		}
	}
	return b.String()
}
