package workload

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urne-vote/urne/client"
)

// Defaults of Config.
const (
	DefaultConcurrency = 8
	DefaultBallotSize  = 256
	DefaultVoterPrefix = "v"
	// MinBallotSize keeps random ballots unique: 16 random bytes never collide in practice,
	// and the cluster refuses a duplicate ballot.
	MinBallotSize = 16
	// progressInterval is how often Run reports progress.
	progressInterval = time.Second
	// recastPause separates the casts of one voter when Config.Retries is set, in case the
	// client gives up at once (every node refusing connections).
	recastPause = 100 * time.Millisecond
)

// Config describes a load.
type Config struct {
	// Voters is the number of voters, with ids VoterPrefix + six digits from 000001; they must
	// be on the roll.
	Voters int
	// Concurrency is the number of casts in flight.
	Concurrency int
	// Duration stops the load after this long (no new cast starts); zero runs until every
	// voter has cast or ctx ends.
	Duration time.Duration
	// BallotSize is the size of each random ballot, at least MinBallotSize.
	BallotSize int
	// VoterPrefix starts every voter id.
	VoterPrefix string
	// Retries makes a worker cast again, with the same request id, a cast whose outcome stayed
	// unknown after the client's own retries, until it gets an answer or the run ends. Without
	// it, every voter gets one logical cast and the history keeps unknown outcomes as they are.
	Retries bool
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Voters <= 0 {
		return cfg, fmt.Errorf("workload: Voters is %d: give the number of voters on the roll", cfg.Voters)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.BallotSize == 0 {
		cfg.BallotSize = DefaultBallotSize
	}
	if cfg.BallotSize < MinBallotSize {
		return cfg, fmt.Errorf("workload: BallotSize %d is below %d bytes: ballots would not be unique", cfg.BallotSize, MinBallotSize)
	}
	if cfg.VoterPrefix == "" {
		cfg.VoterPrefix = DefaultVoterPrefix
	}
	return cfg, nil
}

// VoterID returns the id of voter i (from 1) with prefix: prefix000001.
func VoterID(prefix string, i int) string { return fmt.Sprintf("%s%06d", prefix, i) }

// fatalErrors make every later cast fail too, so the run stops at the first one.
var fatalErrors = []error{client.ErrNoElection, client.ErrWrongElection, client.ErrWrongPhase, client.ErrPermissionDenied, client.ErrClosed}

// Run casts one random ballot for each voter, from Concurrency goroutines, until every voter
// has cast, Duration has passed or ctx ends. progress, if not nil, receives the statistics
// every second and once at the end. The history is returned even with an error, which only
// says why the run stopped early (an invalid config, or an error every cast would meet).
func Run(ctx context.Context, c *client.Client, cfg Config, progress func(Stats)) (*History, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{c: c, cfg: cfg, history: NewHistory()}
	if cfg.Duration > 0 {
		r.deadline = r.history.started.Add(cfg.Duration)
	}
	stopProgress := r.reportProgress(progress)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Wait()
	r.history.finish()
	stopProgress()
	if progress != nil {
		progress(r.history.Stats())
	}
	if f := r.fatal.Load(); f != nil {
		return r.history, f.err
	}
	return r.history, nil
}

// runner is the state the workers share.
type runner struct {
	c        *client.Client
	cfg      Config
	history  *History
	deadline time.Time // zero: no deadline
	next     atomic.Int64
	fatal    atomic.Pointer[fatalError]
}

type fatalError struct{ err error }

// work casts for the next voter until the run is over.
func (r *runner) work(ctx context.Context) {
	for !r.over(ctx) {
		i := int(r.next.Add(1))
		if i > r.cfg.Voters {
			return
		}
		op := r.cast(ctx, VoterID(r.cfg.VoterPrefix, i))
		r.history.Record(op)
		if isFatal(op.Err) {
			r.fatal.CompareAndSwap(nil, &fatalError{fmt.Errorf("workload stopped: every cast would fail: %w", op.Err)})
		}
	}
}

// over reports whether no new cast may start.
func (r *runner) over(ctx context.Context) bool {
	return ctx.Err() != nil || r.fatal.Load() != nil || (!r.deadline.IsZero() && !time.Now().Before(r.deadline))
}

// cast makes one logical cast for voterID, recast while unknown if Config.Retries is set.
func (r *runner) cast(ctx context.Context, voterID string) Op {
	ballot := make([]byte, r.cfg.BallotSize)
	_, _ = rand.Read(ballot) // crypto/rand.Read never fails
	sum := sha256.Sum256(ballot)
	op := Op{VoterID: voterID, RequestID: client.NewRequestID(), Start: time.Now(), BallotFingerprint: sum[:]}
	for {
		op.Attempts++
		resp, err := r.c.CastWithRequestID(ctx, op.RequestID, voterID, ballot)
		op.End, op.Err, op.Outcome = time.Now(), err, outcomeOf(err)
		if err == nil {
			op.Fingerprint, op.Replayed = resp.GetReceipt().GetFingerprint(), resp.GetReplayed()
		}
		if op.Outcome != OutcomeUnknown || !r.cfg.Retries || r.over(ctx) || pause(ctx, recastPause) != nil {
			return op
		}
	}
}

// outcomeOf classifies the error of a cast. Only a node's definitive answer counts as failed:
// giving up (ErrUnavailable) or an interrupted call may hide a recorded ballot.
func outcomeOf(err error) Outcome {
	var nodeErr *client.Error
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, client.ErrOutcomeUnknown), errors.Is(err, client.ErrUnavailable):
		return OutcomeUnknown
	case errors.As(err, &nodeErr), errors.Is(err, client.ErrInvalid), errors.Is(err, client.ErrClosed):
		return OutcomeFailed
	}
	return OutcomeUnknown
}

func isFatal(err error) bool {
	for _, f := range fatalErrors {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// reportProgress calls progress every progressInterval until the returned stop is called.
func (r *runner) reportProgress(progress func(Stats)) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progress(r.history.Stats())
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
