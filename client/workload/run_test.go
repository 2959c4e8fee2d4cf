package workload

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/internal/fakeurne"
	"github.com/urne-vote/urne/transport/urnepb"
)

func TestRunCastsForEveryVoterOnce(t *testing.T) {
	fc := startCluster(t, 3, 500)
	c := newClient(t, fc, nil)
	var mu sync.Mutex
	var last Stats
	h, err := Run(context.Background(), c, Config{Voters: 500, Concurrency: 16, BallotSize: 64}, func(s Stats) {
		mu.Lock()
		defer mu.Unlock()
		last = s
	})
	if err != nil {
		t.Fatal(err)
	}
	voters, requests := map[string]bool{}, map[string]bool{}
	for _, op := range h.Ops() {
		if voters[op.VoterID] || requests[op.RequestID] {
			t.Fatalf("voter %s or request %s appears twice", op.VoterID, op.RequestID)
		}
		voters[op.VoterID], requests[op.RequestID] = true, true
		if op.Outcome != OutcomeOK || len(op.Fingerprint) == 0 || op.End.Before(op.Start) {
			t.Fatalf("op %+v", op)
		}
	}
	s := h.Stats()
	if s.Acked != 500 || len(voters) != 500 || len(h.Acked()) != 500 {
		t.Fatalf("stats %+v, %d voters, want 500 acknowledged", s, len(voters))
	}
	if !(s.P50 <= s.P99 && s.P99 <= s.Max && s.Max > 0 && s.PerSecond > 0) {
		t.Errorf("latencies out of order: %+v", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if last.Acked != 500 {
		t.Errorf("last progress report %+v, want the final statistics", last)
	}
	if counts, _ := c.Counts(context.Background()); counts.GetBallots() != 500 || counts.GetEmargements() != 500 {
		t.Errorf("cluster counts %v", counts)
	}
}

func TestRunStopsAfterDuration(t *testing.T) {
	fc := startCluster(t, 1, 20_000)
	c := newClient(t, fc, nil)
	start := time.Now()
	h := runLoad(t, c, Config{Voters: 20_000, Concurrency: 2, Duration: 100 * time.Millisecond})
	deadline := start.Add(100 * time.Millisecond)
	if n := len(h.Ops()); n == 0 || n == 20_000 {
		t.Fatalf("%d casts, want the run cut short by its duration", n)
	}
	for _, op := range h.Ops() {
		if op.Start.After(deadline.Add(50 * time.Millisecond)) {
			t.Fatalf("cast of %s started at %s, after the duration", op.VoterID, op.Start.Sub(start))
		}
	}
}

func TestRunRecordsUnknownOutcomes(t *testing.T) {
	tests := []struct {
		retries  bool
		outcome  Outcome
		attempts int
	}{
		{false, OutcomeUnknown, 1},
		{true, OutcomeOK, 2},
	}
	for _, tt := range tests {
		fc := startCluster(t, 1, 1)
		unknown := fakeurne.Status(urnepb.ReasonOutcomeUnknown, "leadership lost")
		fc.Nodes[0].Inject(fakeurne.Fault{Method: "Cast", Times: 3, Err: unknown, AfterApply: true})
		c := newClient(t, fc, func(cfg *client.Config) { cfg.MaxAttempts = 2 })

		h := runLoad(t, c, Config{Voters: 1, Concurrency: 1, Retries: tt.retries})
		ops := h.Ops()
		if len(ops) != 1 || ops[0].Outcome != tt.outcome || ops[0].Attempts != tt.attempts {
			t.Fatalf("retries=%v: ops %+v, want one %v op after %d casts", tt.retries, ops, tt.outcome, tt.attempts)
		}
		if tt.outcome == OutcomeOK && !ops[0].Replayed {
			t.Errorf("retries=%v: the recast did not return the first receipt", tt.retries)
		}
		calls := fc.Calls("Cast")
		for _, call := range calls {
			if call.RequestID != ops[0].RequestID {
				t.Fatalf("retries=%v: casts used request ids %v, want %s only", tt.retries, calls, ops[0].RequestID)
			}
		}
		if s := h.Stats(); (s.Unknown == 1) != (tt.outcome == OutcomeUnknown) {
			t.Errorf("retries=%v: stats %+v", tt.retries, s)
		}
	}
}

func TestRunRecordsDefinitiveFailures(t *testing.T) {
	fc := startCluster(t, 1, 10)
	c := newClient(t, fc, nil)
	runLoad(t, c, Config{Voters: 5})
	h := runLoad(t, c, Config{Voters: 10, Concurrency: 3})
	if s := h.Stats(); s.Failed != 5 || s.Acked != 5 || s.Unknown != 0 {
		t.Fatalf("stats %+v, want 5 failed (already voted) and 5 acknowledged", s)
	}
	for _, op := range h.Failed() {
		if !errors.Is(op.Err, client.ErrAlreadyVoted) {
			t.Errorf("%s failed with %v", op.VoterID, op.Err)
		}
	}
}

func TestRunStopsWhenEveryCastWouldFail(t *testing.T) {
	fc := startCluster(t, 1, 1000)
	fc.Mutate(func(s *fakeurne.State) { s.Phase = urnepb.ElectionPhase_PHASE_CLOSED })
	c := newClient(t, fc, nil)
	h, err := Run(context.Background(), c, Config{Voters: 1000, Concurrency: 4}, nil)
	if !errors.Is(err, client.ErrWrongPhase) {
		t.Fatalf("error = %v, want ErrWrongPhase", err)
	}
	if n := len(h.Ops()); n > 4 {
		t.Errorf("%d casts after the election closed, want at most one per worker", n)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Voters: 0}, {Voters: 10, BallotSize: 8}} {
		if _, err := Run(context.Background(), nil, cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %d) = %v, want %v", tt.sorted, tt.p, got, tt.want)
		}
	}
}
