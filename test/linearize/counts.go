package linearize

import (
	"sort"
	"time"
)

// voterTimes are, for one voter, the earliest return of an answer showing it voted and the
// earliest call of a cast that may have recorded its ballot.
type voterTimes struct {
	firstAck  time.Duration // 0: never acknowledged
	firstCast time.Duration // 0: never sent a cast that may have counted
	acked     bool
	cast      bool
}

func timesByVoter(ops []Op) map[string]*voterTimes {
	out := map[string]*voterTimes{}
	get := func(v string) *voterTimes {
		if out[v] == nil {
			out[v] = &voterTimes{}
		}
		return out[v]
	}
	for _, op := range ops {
		switch {
		case op.Kind == KindCast && op.Outcome != Failed:
			t := get(op.Voter)
			if !t.cast || op.Call < t.firstCast {
				t.firstCast, t.cast = op.Call, true
			}
			if op.Outcome == OK && (!t.acked || op.Return < t.firstAck) {
				t.firstAck, t.acked = op.Return, true
			}
		case op.Kind == KindHasVoted && op.Outcome == OK && op.Voted && !op.Stale:
			t := get(op.Voter)
			if !t.acked || op.Return < t.firstAck {
				t.firstAck, t.acked = op.Return, true
			}
		}
	}
	return out
}

// checkCounts checks every count and status read: émargements equal ballots; a linearizable
// count lies between the voters acknowledged before it started and the voters whose cast
// began before it ended; and linearizable reads never go back in time (ballots, phase, index).
func checkCounts(ops []Op, r *Report) {
	var acks, casts []time.Duration
	for _, t := range timesByVoter(ops) {
		if t.acked {
			acks = append(acks, t.firstAck)
		}
		if t.cast {
			casts = append(casts, t.firstCast)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i] < acks[j] })
	sort.Slice(casts, func(i, j int) bool { return casts[i] < casts[j] })
	var reads []Op
	for _, op := range ops {
		if (op.Kind != KindCounts && op.Kind != KindStatus) || op.Outcome != OK {
			continue
		}
		if op.Kind == KindCounts {
			checkCountRead(op, acks, casts, r)
		}
		if !op.Stale {
			reads = append(reads, op)
		}
	}
	checkRoll(reads, r)
	checkMonotonic(reads, r)
}

func checkCountRead(op Op, acks, casts []time.Duration, r *Report) {
	if op.Emargements != op.Ballots {
		r.violate(CheckEmargements, "%s: %d émargements but %d ballots", op, op.Emargements, op.Ballots)
	}
	// Voters whose cast began no later than the read ended may be counted.
	upper := uint64(sort.Search(len(casts), func(i int) bool { return casts[i] > op.Return }))
	if op.Ballots > upper {
		r.violate(CheckCountBounds, "%s: %d ballots, but only %d voters had sent a cast by then", op, op.Ballots, upper)
	}
	if op.Stale {
		return
	}
	// Voters acknowledged before the read began must be counted.
	lower := uint64(sort.Search(len(acks), func(i int) bool { return acks[i] >= op.Call }))
	if op.Ballots < lower {
		r.violate(CheckCountBounds, "%s: %d ballots, but %d voters had been acknowledged before it began", op, op.Ballots, lower)
	}
}

// checkRoll: the roll is imported before the run, so every count sees the same voters.
func checkRoll(reads []Op, r *Report) {
	var first *Op
	for i, op := range reads {
		if op.Kind != KindCounts {
			continue
		}
		if first == nil {
			first = &reads[i]
		} else if op.Voters != first.Voters {
			r.violate(CheckRoll, "%s sees %d voters, %s saw %d", op, op.Voters, *first, first.Voters)
		}
	}
}

// checkMonotonic compares each linearizable read with every read that ended before it began.
func checkMonotonic(reads []Op, r *Report) {
	byReturn := append([]Op(nil), reads...)
	sort.Slice(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
	// prefix[i] holds the largest values among byReturn[:i+1].
	type seen struct {
		ballots, index uint64
		phase          int32
		ballotsOp      Op
		indexOp        Op
		phaseOp        Op
	}
	prefix := make([]seen, len(byReturn))
	var cur seen
	for i, op := range byReturn {
		if op.Kind == KindCounts && op.Ballots > cur.ballots {
			cur.ballots, cur.ballotsOp = op.Ballots, op
		}
		if op.Index > cur.index {
			cur.index, cur.indexOp = op.Index, op
		}
		if op.Phase > cur.phase {
			cur.phase, cur.phaseOp = op.Phase, op
		}
		prefix[i] = cur
	}
	for _, op := range reads {
		n := sort.Search(len(byReturn), func(i int) bool { return byReturn[i].Return >= op.Call })
		if n == 0 {
			continue
		}
		before := prefix[n-1]
		if op.Kind == KindCounts && op.Ballots < before.ballots {
			r.violate(CheckMonotonic, "%s: %d ballots, fewer than the %d of %s, which ended before it began", op, op.Ballots, before.ballots, before.ballotsOp)
		}
		if op.Index < before.index {
			r.violate(CheckMonotonic, "%s: index %d, below the %d of %s, which ended before it began", op, op.Index, before.index, before.indexOp)
		}
		if op.Phase < before.phase {
			r.violate(CheckMonotonic, "%s: phase %d, behind the %d of %s, which ended before it began", op, op.Phase, before.phase, before.phaseOp)
		}
	}
}
