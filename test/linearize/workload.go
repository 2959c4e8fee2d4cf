package linearize

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urne-vote/urne/client"
)

// Mix weighs the operations a worker picks from. Zero weights leave an operation out.
type Mix struct {
	Cast         int // a first cast for a voter who has not cast yet
	Race         int // two concurrent casts of one new voter, with different requests and ballots
	Retry        int // a cast sent again with the request id and ballot of an earlier one
	SecondBallot int // a new request and ballot for a voter who already cast
	HasVoted     int // a linearizable émargement read, on the leader or on a given node
	Counts       int // a linearizable count
	StaleCounts  int // a stale count on one node
	Status       int // a linearizable read of the election's state
}

// DefaultMix casts mostly, retries and reads often enough to catch stale answers.
var DefaultMix = Mix{Cast: 50, Race: 5, Retry: 10, SecondBallot: 5, HasVoted: 15, Counts: 7, StaleCounts: 3, Status: 5}

// Workload describes a load. The voters VoterPrefix000001... must be on the roll and the
// election open.
type Workload struct {
	Voters      int
	VoterPrefix string
	Workers     int
	// Duration stops new operations after this long; zero runs until ctx ends or every
	// voter has cast.
	Duration time.Duration
	// OpTimeout bounds one operation, the client's retries included; zero means 15 s.
	OpTimeout time.Duration
	// PinnedTimeout bounds a read pinned to one node, which retries on that node alone
	// while it is cut off; zero means 3 s.
	PinnedTimeout time.Duration
	// Endpoints are the nodes reads may be pinned to (a follower serves a linearizable read
	// through the leader's read index); empty lets the client choose.
	Endpoints []string
	Mix       Mix
	// Stop, when closed, lets no new operation start; those under way finish.
	Stop <-chan struct{}
}

// Run drives the load with c and records every operation in h. It returns when the load is
// over; operations still in flight when ctx ends are recorded as unknown.
func (w Workload) Run(ctx context.Context, c *client.Client, h *History) error {
	if w.Voters <= 0 || w.VoterPrefix == "" {
		return fmt.Errorf("workload: %d voters with prefix %q: give the roll", w.Voters, w.VoterPrefix)
	}
	w.Workers = max(w.Workers, 1)
	if w.OpTimeout == 0 {
		w.OpTimeout = 15 * time.Second
	}
	if w.PinnedTimeout == 0 {
		w.PinnedTimeout = 3 * time.Second
	}
	if w.Mix == (Mix{}) {
		w.Mix = DefaultMix
	}
	r := &runner{w: w, c: c, h: h, cast: map[string]castRecord{}}
	if w.Duration > 0 {
		r.deadline = time.Now().Add(w.Duration)
	}
	var wg sync.WaitGroup
	for i := range w.Workers {
		rng := mathrand.New(mathrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
		// One worker in three only reads: reads stuck on a cut-off node must not stall
		// the casts, nor casts the reads.
		reader := i%3 == 2
		wg.Go(func() { r.work(ctx, 2*i, reader, rng) })
	}
	wg.Wait()
	return nil
}

// castRecord is the last cast sent for a voter: what a retry sends again.
type castRecord struct {
	request string
	ballot  []byte
}

type runner struct {
	w        Workload
	deadline time.Time // no operation starts after it; zero: none
	c        *client.Client
	h        *History
	next     atomic.Int64 // voters handed out so far

	mu     sync.Mutex
	cast   map[string]castRecord
	voters []string // voters with a cast, for retries and reads
}

// work runs operations until ctx ends or the deadline passes. An operation under way when
// the deadline passes finishes (within OpTimeout), so that the end of a run does not turn
// answers into unknown outcomes.
func (r *runner) work(ctx context.Context, id int, reader bool, rng *mathrand.Rand) {
	for !r.over(ctx) {
		r.step(ctx, id, reader, rng)
	}
}

func (r *runner) over(ctx context.Context) bool {
	select {
	case <-r.w.Stop:
		return true
	default:
	}
	return ctx.Err() != nil || (!r.deadline.IsZero() && !time.Now().Before(r.deadline))
}

// step runs one operation picked by the mix, among reads or among casts.
func (r *runner) step(ctx context.Context, id int, reader bool, rng *mathrand.Rand) {
	m := r.w.Mix
	weights := []int{m.Cast, m.Race, m.Retry, m.SecondBallot}
	ops := []func(context.Context, int, *mathrand.Rand){r.castNew, r.race, r.retry, r.secondBallot}
	if reader || m.Cast+m.Race+m.Retry+m.SecondBallot == 0 {
		weights = []int{m.HasVoted, m.Counts, m.StaleCounts, m.Status}
		ops = []func(context.Context, int, *mathrand.Rand){r.hasVoted, r.counts, r.staleCounts, r.status}
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	if total == 0 {
		r.idle(ctx)
		return
	}
	pick := rng.IntN(total)
	for i, w := range weights {
		if pick < w {
			ops[i](ctx, id, rng)
			return
		}
		pick -= w
	}
}

// freshVoter hands out the next voter who has not cast, or "" when none is left.
func (r *runner) freshVoter() string {
	i := r.next.Add(1)
	if i > int64(r.w.Voters) {
		return ""
	}
	return fmt.Sprintf("%s%06d", r.w.VoterPrefix, i)
}

// castVoter returns a voter who has cast and its last cast, or false when none has.
func (r *runner) castVoter(rng *mathrand.Rand) (string, castRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.voters) == 0 {
		return "", castRecord{}, false
	}
	v := r.voters[rng.IntN(len(r.voters))]
	return v, r.cast[v], true
}

func (r *runner) remember(voter string, rec castRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cast[voter]; !ok {
		r.voters = append(r.voters, voter)
	}
	r.cast[voter] = rec
}

func (r *runner) castNew(ctx context.Context, id int, _ *mathrand.Rand) {
	v := r.freshVoter()
	if v == "" {
		r.idle(ctx)
		return
	}
	r.send(ctx, id, v, castRecord{client.NewRequestID(), newBallot()})
}

// race sends two casts for one new voter at once: exactly one may be acknowledged.
func (r *runner) race(ctx context.Context, id int, _ *mathrand.Rand) {
	v := r.freshVoter()
	if v == "" {
		r.idle(ctx)
		return
	}
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Go(func() { r.send(ctx, id+k, v, castRecord{client.NewRequestID(), newBallot()}) })
	}
	wg.Wait()
}

func (r *runner) retry(ctx context.Context, id int, rng *mathrand.Rand) {
	if v, rec, ok := r.castVoter(rng); ok {
		r.send(ctx, id, v, rec)
		return
	}
	r.castNew(ctx, id, rng)
}

func (r *runner) secondBallot(ctx context.Context, id int, rng *mathrand.Rand) {
	if v, _, ok := r.castVoter(rng); ok {
		r.send(ctx, id, v, castRecord{client.NewRequestID(), newBallot()})
		return
	}
	r.castNew(ctx, id, rng)
}

// idle waits a little when there is nothing left to cast, so reads go on without spinning.
func (r *runner) idle(ctx context.Context) {
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.w.Stop:
	case <-t.C:
	}
}

func newBallot() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// send casts rec for voter and records the operation.
func (r *runner) send(ctx context.Context, id int, voter string, rec castRecord) {
	r.remember(voter, rec)
	sum := sha256.Sum256(rec.ballot)
	op := Op{Client: id, Kind: KindCast, Voter: voter, Request: rec.request, Ballot: sum[:], Call: r.h.Now()}
	octx, cancel := context.WithTimeout(ctx, r.w.OpTimeout)
	resp, err := r.c.CastWithRequestID(octx, rec.request, voter, rec.ballot)
	cancel()
	op.Return = r.h.Now()
	op.Outcome, op.Refusal = castOutcome(err)
	if err != nil {
		op.Err = err.Error()
	} else {
		op.Receipt, op.EmargedAt, op.Replayed = resp.GetReceipt().GetFingerprint(), resp.GetReceipt().GetEmargedAtUnixNano(), resp.GetReplayed()
	}
	r.h.Add(op)
}

// castOutcome classifies the error of a cast. The client promises that ErrUnavailable means
// no attempt was applied; the checker holds it to that.
func castOutcome(err error) (Outcome, Refusal) {
	switch {
	case err == nil:
		return OK, ""
	case errors.Is(err, client.ErrAlreadyVoted):
		return Failed, RefusedAlreadyVoted
	case errors.Is(err, client.ErrOutcomeUnknown), errors.Is(err, client.ErrInternal),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Unknown, ""
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrWrongPhase), errors.Is(err, client.ErrInvalid),
		errors.Is(err, client.ErrUnknownVoter), errors.Is(err, client.ErrDuplicateBallot), errors.Is(err, client.ErrClosed):
		return Failed, RefusedNotApplied
	}
	return Unknown, ""
}

// readOptions pins a read to a random configured node half of the time.
func (r *runner) readOptions(rng *mathrand.Rand) (string, []client.ReadOption) {
	if len(r.w.Endpoints) == 0 || rng.IntN(2) == 0 {
		return "", nil
	}
	ep := r.w.Endpoints[rng.IntN(len(r.w.Endpoints))]
	return ep, []client.ReadOption{client.OnEndpoint(ep)}
}

func (r *runner) hasVoted(ctx context.Context, id int, rng *mathrand.Rand) {
	v, _, ok := r.castVoter(rng)
	if !ok {
		v = fmt.Sprintf("%s%06d", r.w.VoterPrefix, 1+rng.IntN(r.w.Voters))
	}
	node, opts := r.readOptions(rng)
	op := Op{Client: id, Kind: KindHasVoted, Voter: v, Node: node, Call: r.h.Now()}
	octx, cancel := context.WithTimeout(ctx, r.readTimeout(node))
	resp, err := r.c.HasVoted(octx, v, opts...)
	cancel()
	r.finishRead(&op, err, func() { op.Voted, op.EmargedAt = resp.GetVoted(), resp.GetEmargedAtUnixNano() })
}

func (r *runner) counts(ctx context.Context, id int, rng *mathrand.Rand) {
	node, opts := r.readOptions(rng)
	r.readCounts(ctx, Op{Client: id, Kind: KindCounts, Node: node}, opts)
}

func (r *runner) staleCounts(ctx context.Context, id int, rng *mathrand.Rand) {
	if len(r.w.Endpoints) == 0 {
		r.counts(ctx, id, rng)
		return
	}
	ep := r.w.Endpoints[rng.IntN(len(r.w.Endpoints))]
	r.readCounts(ctx, Op{Client: id, Kind: KindCounts, Node: ep, Stale: true}, []client.ReadOption{client.Stale(), client.OnEndpoint(ep)})
}

func (r *runner) readCounts(ctx context.Context, op Op, opts []client.ReadOption) {
	op.Call = r.h.Now()
	octx, cancel := context.WithTimeout(ctx, r.readTimeout(op.Node))
	resp, err := r.c.Counts(octx, opts...)
	cancel()
	r.finishRead(&op, err, func() {
		op.Voters, op.Emargements, op.Ballots = resp.GetVoters(), resp.GetEmargements(), resp.GetBallots()
		op.Phase, op.Index = int32(resp.GetPhase()), resp.GetIndex()
	})
}

func (r *runner) status(ctx context.Context, id int, rng *mathrand.Rand) {
	node, opts := r.readOptions(rng)
	op := Op{Client: id, Kind: KindStatus, Node: node, Call: r.h.Now()}
	octx, cancel := context.WithTimeout(ctx, r.readTimeout(node))
	resp, err := r.c.GetElection(octx, opts...)
	cancel()
	r.finishRead(&op, err, func() { op.Phase, op.Index = int32(resp.GetPhase()), resp.GetIndex() })
}

func (r *runner) readTimeout(node string) time.Duration {
	if node != "" {
		return r.w.PinnedTimeout
	}
	return r.w.OpTimeout
}

// finishRead stamps the return, fills the answer when there is one, and records the read.
func (r *runner) finishRead(op *Op, err error, fill func()) {
	op.Return = r.h.Now()
	if err != nil {
		op.Outcome, op.Err = Unknown, err.Error()
		var nodeErr *client.Error
		if errors.As(err, &nodeErr) {
			op.Outcome = Failed
		}
	} else {
		op.Outcome = OK
		fill()
	}
	r.h.Add(*op)
}
