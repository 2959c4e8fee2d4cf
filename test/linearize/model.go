package linearize

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// voterState is the model's state of one voter: not voted, or voted with one request and one
// ballot at a time the model learns from the first answer that tells it (0 until then).
type voterState struct {
	voted   bool
	request string
	ballot  string
	at      int64
}

func (s voterState) String() string {
	if !s.voted {
		return "not voted"
	}
	at := "?"
	if s.at != 0 {
		at = fmt.Sprint(s.at)
	}
	return fmt.Sprintf("voted req=%.8s ballot=%.6x at=%s", s.request, s.ballot, at)
}

// voterModel is the election as one voter sees it. A voter's operations never depend on
// another voter's, so the election is linearizable when every voter's history is.
//   - a cast answered OK was the voter's first, or a retry of that same request and ballot,
//     and it answers the receipt of that first cast;
//   - a cast refused as already-voted found the voter voted by another request;
//   - a cast refused before the log changed nothing;
//   - a cast of unknown outcome took effect or did not (both are explored);
//   - a has-voted read, and the final state of every replica, show the current state.
var voterModel = porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{voterState{}} },
	Step: func(state, input, _ interface{}) []interface{} {
		s, op := state.(voterState), input.(Op)
		var next []voterState
		switch op.Kind {
		case KindCast:
			next = stepCast(s, op)
		case KindHasVoted:
			next = stepRead(s, op.Voted, op.EmargedAt)
		case KindFinal:
			next = stepFinal(s, op)
		}
		out := make([]interface{}, len(next))
		for i, n := range next {
			out[i] = n
		}
		return out
	},
	DescribeOperation: func(input, _ interface{}) string { return input.(Op).String() },
	DescribeState:     func(state interface{}) string { return state.(voterState).String() },
}

func stepCast(s voterState, op Op) []voterState {
	switch op.Outcome {
	case Unknown:
		return []voterState{s, castEffect(s, op)}
	case Failed:
		if op.Refusal == RefusedAlreadyVoted && !(s.voted && s.request != op.Request) {
			return nil
		}
		return []voterState{s}
	}
	if string(op.Receipt) != string(op.Ballot) {
		return nil // a receipt for another ballot
	}
	if !s.voted {
		return []voterState{{voted: true, request: op.Request, ballot: string(op.Ballot), at: op.EmargedAt}}
	}
	if s.request != op.Request || s.ballot != string(op.Ballot) {
		return nil // a second ballot accepted
	}
	return stepAt(s, op.EmargedAt)
}

// castEffect is the state after op, had it taken effect.
func castEffect(s voterState, op Op) voterState {
	if s.voted {
		return s
	}
	return voterState{voted: true, request: op.Request, ballot: string(op.Ballot)}
}

func stepRead(s voterState, voted bool, at int64) []voterState {
	if voted != s.voted {
		return nil
	}
	if !voted {
		return []voterState{s}
	}
	return stepAt(s, at)
}

// stepAt checks an émargement time against the one known, or learns it.
func stepAt(s voterState, at int64) []voterState {
	if at == 0 {
		return []voterState{s}
	}
	if s.at != 0 && s.at != at {
		return nil
	}
	s.at = at
	return []voterState{s}
}

// stepFinal checks a replica's final state of the voter: émargement and ballot together.
func stepFinal(s voterState, op Op) []voterState {
	if (op.Receipt != nil) != op.Voted {
		return nil // an émargement without its ballot, or a ballot without émargement
	}
	if op.Voted && string(op.Receipt) != s.ballot {
		return nil
	}
	return stepRead(s, op.Voted, op.EmargedAt)
}
