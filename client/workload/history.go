package workload

import (
	"slices"
	"sync"
	"time"
)

// Outcome is what the client learned about one cast.
type Outcome int

const (
	// OutcomeOK: the cluster acknowledged the cast and returned a receipt.
	OutcomeOK Outcome = iota + 1
	// OutcomeFailed: the cluster answered definitively that the cast was not recorded.
	OutcomeFailed
	// OutcomeUnknown: the cast may or may not have been recorded (retries exhausted, the
	// cluster unreachable, or the run ended while it was in flight).
	OutcomeUnknown
)

func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeFailed:
		return "failed"
	case OutcomeUnknown:
		return "unknown"
	}
	return "invalid"
}

// Op is one cast: one voter, one request id, possibly several attempts.
type Op struct {
	VoterID   string
	RequestID string
	Start     time.Time
	End       time.Time
	Outcome   Outcome
	// Fingerprint is the receipt's fingerprint, set when Outcome is OutcomeOK.
	Fingerprint []byte
	// BallotFingerprint is the SHA-256 of the ballot sent, whatever the outcome.
	BallotFingerprint []byte
	// Replayed is set when the receipt was the one of an earlier attempt of the same request id.
	Replayed bool
	// Attempts counts the casts made with this request id (more than one only with Config.Retries).
	Attempts int
	// Err is the error of the last attempt; nil when acknowledged.
	Err error
}

// Latency is the time from the first attempt to the last answer.
func (o Op) Latency() time.Duration { return o.End.Sub(o.Start) }

// History is the record of a run. It is safe for concurrent use.
type History struct {
	mu      sync.Mutex
	ops     []Op
	started time.Time
	ended   time.Time
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{started: time.Now()} }

// Record adds one operation.
func (h *History) Record(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// finish stops the history's clock.
func (h *History) finish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = time.Now()
}

// Ops returns every operation, in the order they completed.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Acked returns the acknowledged operations.
func (h *History) Acked() []Op { return h.with(OutcomeOK) }

// Failed returns the operations that failed definitively.
func (h *History) Failed() []Op { return h.with(OutcomeFailed) }

// Unknown returns the operations of unknown outcome.
func (h *History) Unknown() []Op { return h.with(OutcomeUnknown) }

func (h *History) with(o Outcome) []Op {
	var out []Op
	for _, op := range h.Ops() {
		if op.Outcome == o {
			out = append(out, op)
		}
	}
	return out
}

// Stats summarizes a run. Latencies are those of acknowledged casts.
type Stats struct {
	Acked     int
	Failed    int
	Unknown   int
	Elapsed   time.Duration
	PerSecond float64 // acknowledged casts per second
	P50       time.Duration
	P99       time.Duration
	Max       time.Duration
}

// Stats computes the summary so far.
func (h *History) Stats() Stats {
	h.mu.Lock()
	end := h.ended
	if end.IsZero() {
		end = time.Now()
	}
	s := Stats{Elapsed: end.Sub(h.started)}
	var latencies []time.Duration
	for _, op := range h.ops {
		switch op.Outcome {
		case OutcomeOK:
			s.Acked++
			latencies = append(latencies, op.Latency())
		case OutcomeFailed:
			s.Failed++
		default:
			s.Unknown++
		}
	}
	h.mu.Unlock()
	if s.Elapsed > 0 {
		s.PerSecond = float64(s.Acked) / s.Elapsed.Seconds()
	}
	slices.Sort(latencies)
	s.P50, s.P99 = Percentile(latencies, 50), Percentile(latencies, 99)
	if len(latencies) > 0 {
		s.Max = latencies[len(latencies)-1]
	}
	return s
}

// Percentile returns the p-th percentile of sorted by the nearest-rank method.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
