package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/transport/urnepb"
)

// The rehearsal roll: blocks of PoolBlockSize voters named drill-<block>-<n>, block 0001 first.
// Each run casts for the voters of fresh blocks (whose first voter has not voted), one block
// after the other, so runs never reuse a voter; a block a run started is never used again.
const (
	PoolBlockSize     = 500
	poolElectionName  = "Drill rehearsal"
	drillBallotSize   = 128
	maxPoolBlock      = 9999
	convergenceWait   = 60 * time.Second
	rehearsalPrefixFm = "drill-%04d-"
)

func blockPrefix(b int) string { return fmt.Sprintf(rehearsalPrefixFm, b) }

// LoadReport is what the synthetic load did and what its history proves.
type LoadReport struct {
	Blocks      []string `json:"blocks"`
	Concurrency int      `json:"concurrency"`
	Acked       int      `json:"acknowledged"`
	Failed      int      `json:"failed"`
	Unknown     int      `json:"unknown"`
	PerSecond   float64  `json:"casts_per_second"`
	// Baseline is the number of ballots in the box before the load started.
	Baseline   int      `json:"baseline_ballots"`
	Exhausted  bool     `json:"pool_exhausted,omitempty"`
	Violations []string `json:"violations"`
}

// load is the synthetic voting of a drill: Concurrency workers, each casting one vote at a
// time for the voters of its own block, taking the next free block when its block is done.
// Blocks at a boundary are thus never all empty at once: the load has no pause of its own that
// a recovery time could be mistaken for.
type load struct {
	e        *Env
	o        Options
	cancel   context.CancelFunc
	done     chan struct{}
	baseline map[string]bool
	// acked counts the casts acknowledged in finished blocks; running those of the blocks
	// being cast, per worker (reported once a second).
	acked   atomic.Int64
	running []atomic.Int64

	mu        sync.Mutex
	free      []int
	ops       []workload.Op
	blocks    []string
	exhausted bool
	err       error
	started   time.Time
}

// startLoad prepares the rehearsal roll if needed, reads the box as it is, and starts casting.
func (e *Env) startLoad(ctx context.Context, o Options) (*load, error) {
	blocks, err := e.preparePool(ctx, o.PoolBlocks)
	if err != nil {
		return nil, err
	}
	first, ok, err := e.freeBlock(ctx, 1, blocks)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: every block of the rehearsal roll has been used; drill on a fresh cluster or with --no-load", ErrNoRehearsal)
	}
	baseline, err := e.box(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the box before the load: %w", err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &load{e: e, o: o, cancel: cancel, done: make(chan struct{}), baseline: baseline, started: time.Now(),
		running: make([]atomic.Int64, o.Concurrency)}
	// Runs take blocks in order, so every block after the first free one is free.
	for b := first; b <= blocks; b++ {
		l.free = append(l.free, b)
	}
	go l.run(lctx)
	return l, nil
}

// preparePool creates and opens the rehearsal election when the cluster has none, and checks
// otherwise that its election is an open rehearsal (by its name): a drill never casts into a
// real election. It returns the number of blocks of the roll.
func (e *Env) preparePool(ctx context.Context, blocks int) (int, error) {
	st, err := e.Operator.GetElection(ctx)
	switch {
	case errors.Is(err, client.ErrNoElection):
		return blocks, e.createPool(ctx, blocks)
	case err != nil:
		return 0, err
	case st.GetName() != poolElectionName:
		return 0, fmt.Errorf("%w: election %s (%q) is not a rehearsal election created by a drill; run drills with load on a rehearsal cluster, or use --no-load",
			ErrNoRehearsal, st.GetElectionId(), st.GetName())
	case st.GetPhase() != urnepb.ElectionPhase_PHASE_OPEN:
		return 0, fmt.Errorf("%w: the rehearsal election is %s, not open (use --no-load)", ErrNoRehearsal, st.GetPhase())
	}
	counts, err := e.Operator.Counts(ctx)
	if err != nil {
		return 0, err
	}
	return int(counts.GetVoters()) / PoolBlockSize, nil
}

func (e *Env) createPool(ctx context.Context, blocks int) error {
	if _, err := e.Organizer.CreateElection(ctx, e.File.ElectionID, poolElectionName); err != nil {
		return fmt.Errorf("creating the rehearsal election: %w", err)
	}
	total := blocks * PoolBlockSize
	sent := 0
	_, err := e.Organizer.ImportVoters(ctx, func() (*urnepb.Voter, error) {
		if sent == total {
			return nil, io.EOF
		}
		b, i := sent/PoolBlockSize+1, sent%PoolBlockSize+1
		sent++
		id := workload.VoterID(blockPrefix(b), i)
		return &urnepb.Voter{VoterId: id, Name: "Rehearsal voter " + id}, nil
	})
	if err != nil {
		return fmt.Errorf("importing %d rehearsal voters: %w", total, err)
	}
	if _, err := e.Organizer.OpenElection(ctx); err != nil {
		return fmt.Errorf("opening the rehearsal election: %w", err)
	}
	if e.Logf != nil {
		e.Logf("created the rehearsal election %s with %d voters", e.File.ElectionID, total)
	}
	return nil
}

// freeBlock returns the first block from `from` to last whose first voter has not voted; ok is
// false when there is none.
func (e *Env) freeBlock(ctx context.Context, from, last int) (int, bool, error) {
	for b := from; b <= min(last, maxPoolBlock); b++ {
		resp, err := e.Operator.HasVoted(ctx, blockPrefix(b)+"000001")
		if err != nil {
			return 0, false, err
		}
		if !resp.GetVoted() {
			return b, true, nil
		}
	}
	return 0, false, nil
}

// box lists the fingerprints in the box, through the leader.
func (e *Env) box(ctx context.Context, opts ...client.ReadOption) (map[string]bool, error) {
	out := map[string]bool{}
	err := e.Operator.Fingerprints(ctx, func(fp []byte) error { out[string(fp)] = true; return nil }, opts...)
	return out, err
}

// run runs the workers until they are stopped, the roll runs out, or a cast fails in a way
// every cast would.
func (l *load) run(ctx context.Context) {
	defer close(l.done)
	var wg sync.WaitGroup
	for w := range l.o.Concurrency {
		wg.Go(func() { l.work(ctx, w) })
	}
	wg.Wait()
}

// work casts for the voters of one block after the other, one cast at a time.
func (l *load) work(ctx context.Context, w int) {
	for ctx.Err() == nil {
		prefix, ok := l.takeBlock()
		if !ok {
			return
		}
		h, err := workload.Run(ctx, l.e.App, workload.Config{Voters: PoolBlockSize, Concurrency: 1,
			BallotSize: drillBallotSize, VoterPrefix: prefix, Retries: true}, func(s workload.Stats) { l.running[w].Store(int64(s.Acked)) })
		l.mu.Lock()
		if h != nil {
			l.ops = append(l.ops, h.Ops()...)
			l.acked.Add(int64(len(h.Acked())))
		}
		l.running[w].Store(0)
		if err != nil && l.err == nil {
			l.err = err
			l.cancel()
		}
		l.mu.Unlock()
	}
}

// takeBlock hands out the next free block.
func (l *load) takeBlock() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) == 0 {
		l.exhausted = true
		return "", false
	}
	prefix := blockPrefix(l.free[0])
	l.free = l.free[1:]
	l.blocks = append(l.blocks, prefix)
	return prefix, true
}

// Acked is the number of casts acknowledged so far (those of running blocks as of the last
// second).
func (l *load) Acked() int64 {
	n := l.acked.Load()
	for i := range l.running {
		n += l.running[i].Load()
	}
	return n
}

// waitProgress waits until n more casts are acknowledged than when it was called, or timeout.
func (l *load) waitProgress(ctx context.Context, n int64, timeout time.Duration) error {
	from := l.Acked()
	return pollUntil(ctx, timeout, func() error {
		if got := l.Acked() - from; got < n {
			return fmt.Errorf("the load acknowledged %d casts of the %d awaited", got, n)
		}
		return nil
	})
}

// stop ends the load and returns its history.
func (l *load) stop() *workload.History {
	l.cancel()
	<-l.done
	h := workload.NewHistory()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, op := range l.ops {
		h.Record(op)
	}
	return h
}
