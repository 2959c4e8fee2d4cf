package linearize

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"time"
)

// Kind is the operation an Op records.
type Kind string

const (
	// KindCast is one logical cast: a voter, a request id and a ballot.
	KindCast Kind = "cast"
	// KindHasVoted reads the émargement of one voter.
	KindHasVoted Kind = "has-voted"
	// KindCounts reads the voter, émargement and ballot counts.
	KindCounts Kind = "counts"
	// KindStatus reads the election's phase.
	KindStatus Kind = "status"
	// KindMembership is a change of the raft configuration or of leadership.
	KindMembership Kind = "membership"
	// KindFault is a fault injected or lifted by the scenario (recorded for the report).
	KindFault Kind = "fault"
	// KindFinal is the final state of one voter on one replica, read after the faults healed:
	// Voted says whether the replica holds its émargement (at EmargedAt), Receipt which of
	// its ballots the box holds (nil for none). Check builds these from each Replica.
	KindFinal Kind = "final"
)

// Outcome is what the caller learned about an operation.
type Outcome string

const (
	// OK: the cluster answered and the answer is recorded.
	OK Outcome = "ok"
	// Failed: the cluster answered definitively that the operation did not take effect.
	Failed Outcome = "failed"
	// Unknown: the operation may or may not have taken effect.
	Unknown Outcome = "unknown"
)

// Refusal names a definitive refusal of a cast; the model treats them differently.
type Refusal string

const (
	// RefusedAlreadyVoted: the voter has an émargement from another request.
	RefusedAlreadyVoted Refusal = "already-voted"
	// RefusedNotApplied: the cast was refused before it reached the log (no leader, wrong
	// phase, invalid): it changed nothing.
	RefusedNotApplied Refusal = "not-applied"
)

// Op is one operation of a history. Times are offsets from the history's start on a
// monotonic clock. Which fields are set depends on Kind.
type Op struct {
	Client  int           `json:"client"`
	Kind    Kind          `json:"kind"`
	Call    time.Duration `json:"call"`
	Return  time.Duration `json:"return"`
	Outcome Outcome       `json:"outcome"`
	// Node is the endpoint a read was pinned to, or "" when the client chose.
	Node  string `json:"node,omitempty"`
	Stale bool   `json:"stale,omitempty"`
	Err   string `json:"err,omitempty"`

	// Cast and has-voted.
	Voter string `json:"voter,omitempty"`
	// Cast: the request id and the SHA-256 of the ballot sent.
	Request string  `json:"request,omitempty"`
	Ballot  []byte  `json:"ballot,omitempty"`
	Refusal Refusal `json:"refusal,omitempty"`
	// Cast receipt (OK): fingerprint, émargement time and whether it was a replay.
	Receipt   []byte `json:"receipt,omitempty"`
	EmargedAt int64  `json:"emarged_at,omitempty"`
	Replayed  bool   `json:"replayed,omitempty"`
	// Has-voted answer (OK).
	Voted bool `json:"voted,omitempty"`

	// Counts and status answers (OK).
	Voters      uint64 `json:"voters,omitempty"`
	Emargements uint64 `json:"emargements,omitempty"`
	Ballots     uint64 `json:"ballots,omitempty"`
	Phase       int32  `json:"phase,omitempty"`
	Index       uint64 `json:"index,omitempty"`

	// Membership and fault: what was done.
	Action string `json:"action,omitempty"`
}

func (o Op) String() string {
	head := fmt.Sprintf("[%s..%s] c%d %s", ms(o.Call), ms(o.Return), o.Client, o.Kind)
	switch o.Kind {
	case KindCast:
		head += fmt.Sprintf(" %s req=%.8s ballot=%.6x -> %s", o.Voter, o.Request, o.Ballot, o.Outcome)
		if o.Outcome == OK {
			head += fmt.Sprintf(" receipt=%.6x at=%d replayed=%v", o.Receipt, o.EmargedAt, o.Replayed)
		}
		if o.Refusal != "" {
			head += " " + string(o.Refusal)
		}
	case KindHasVoted:
		head += fmt.Sprintf(" %s -> %s voted=%v at=%d", o.Voter, o.Outcome, o.Voted, o.EmargedAt)
	case KindFinal:
		head += fmt.Sprintf(" %s: émargement=%v at=%d ballot=%.6x", o.Voter, o.Voted, o.EmargedAt, o.Receipt)
	case KindCounts, KindStatus:
		head += fmt.Sprintf(" -> %s voters=%d emargements=%d ballots=%d phase=%d index=%d", o.Outcome,
			o.Voters, o.Emargements, o.Ballots, o.Phase, o.Index)
	default:
		head += fmt.Sprintf(" %s -> %s", o.Action, o.Outcome)
	}
	if o.Node != "" {
		head += " on " + o.Node
	}
	if o.Stale {
		head += " (stale)"
	}
	return head
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// History records operations from many goroutines. The zero value is not usable: NewHistory.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
	acked int // casts answered OK
}

// NewHistory starts a history whose clock reads zero now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock: the monotonic time since the history started.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// Add records one finished operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
	if op.Kind == KindCast && op.Outcome == OK {
		h.acked++
	}
}

// Acked returns the number of casts answered OK so far.
func (h *History) Acked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.acked
}

// Ops returns every operation recorded so far, ordered by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// Save writes the operations as JSON, for a failed check to be read later.
func Save(path string, ops []Op) error {
	b, err := json.MarshalIndent(ops, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// Load reads operations written by Save.
func Load(path string) ([]Op, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ops []Op
	if err := json.Unmarshal(b, &ops); err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	return ops, nil
}

// Tally counts operations by outcome.
type Tally struct {
	Ops, OK, Failed, Unknown int
}

// TallyOf counts the operations of ops that are not faults.
func TallyOf(ops []Op) Tally {
	var t Tally
	for _, op := range ops {
		if op.Kind == KindFault {
			continue
		}
		t.Ops++
		switch op.Outcome {
		case OK:
			t.OK++
		case Failed:
			t.Failed++
		default:
			t.Unknown++
		}
	}
	return t
}
