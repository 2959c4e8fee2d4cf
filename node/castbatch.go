package node

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// maxCastBatchesInFlight bounds the CAST_BATCH entries the leader has in raft at once. While
// they are all in flight, arriving casts wait together and leave as the next batch: the busier
// the leader, the larger its batches (group commit). More than one in flight lets raft append
// the next batch while the state machine applies the previous one.
const maxCastBatchesInFlight = 4

// castBatcher groups the casts that reach the leader together into CAST_BATCH entries: one
// raft entry and one state-database transaction for many casts. The zero value is ready.
type castBatcher struct {
	mu       sync.Mutex
	pending  []*pendingCast
	bytes    int
	inFlight int
}

// pendingCast is one caller's cast waiting for its batch to commit.
type pendingCast struct {
	cmd  *fsmpb.Command
	size int
	done chan castOutcome
}

type castOutcome struct {
	resp  *fsmpb.Response
	index uint64
	err   error
}

// castSize is what a cast adds to its batch's entry, framing included.
func castSize(cmd *fsmpb.Command) int {
	return len(cmd.Payload) + len(cmd.GetActor().GetPrincipal()) + len(cmd.GetActor().GetIp()) + 16
}

// applyCast commits one validated CAST through the batcher and answers as applyLocal does.
func (n *Node) applyCast(cmd *fsmpb.Command) (*fsmpb.Response, uint64, error) {
	p := &pendingCast{cmd: cmd, size: castSize(cmd), done: make(chan castOutcome, 1)}
	b := &n.casts
	b.mu.Lock()
	b.pending = append(b.pending, p)
	b.bytes += p.size
	if b.inFlight < maxCastBatchesInFlight {
		b.inFlight++
		batch := b.take()
		b.mu.Unlock()
		go n.flushCasts(batch)
	} else {
		b.mu.Unlock()
	}
	out := <-p.done
	return out.resp, out.index, out.err
}

// take removes the next batch from the queue, oldest first, within the batch's bounds.
// The caller holds mu.
func (b *castBatcher) take() []*pendingCast {
	n, size := 0, 0
	for n < len(b.pending) && n < fsm.MaxCastsPerBatch {
		if n > 0 && size+b.pending[n].size > fsm.MaxCastBatchBytes {
			break
		}
		size += b.pending[n].size
		n++
	}
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	b.bytes -= size
	return batch
}

// flushCasts commits batch, then the casts that queued meanwhile, until none wait.
func (n *Node) flushCasts(batch []*pendingCast) {
	b := &n.casts
	for {
		n.commitCasts(batch)
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		batch = b.take()
		b.mu.Unlock()
	}
}

// commitCasts proposes one CAST_BATCH of the casts, in an order drawn by the leader, and
// hands each caller its own answer. A raft error reaches every caller of the batch: none of
// its casts was applied, or (outcome unknown) all retry with their request ids.
func (n *Node) commitCasts(batch []*pendingCast) {
	cmds := make([]*fsmpb.Command, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	cmd, order, err := fsm.NewCastBatch(cmds, rand.Reader)
	if err != nil {
		failCasts(batch, err)
		return
	}
	if err := fsm.Stamp(cmd, n.clock.Now(), rand.Reader); err != nil {
		failCasts(batch, fmt.Errorf("stamp command: %w", err))
		return
	}
	data, err := fsm.Encode(cmd)
	if err != nil {
		failCasts(batch, err)
		return
	}
	start := time.Now()
	f := n.raft.Apply(data, applyTimeout)
	if err := n.await(f); err != nil {
		failCasts(batch, classifyApplyError(err))
		return
	}
	n.metrics.observeCommit(time.Since(start))
	n.metrics.castBatch.Observe(float64(len(batch)))
	resp, ok := f.Response().(*fsmpb.Response)
	if !ok {
		failCasts(batch, fmt.Errorf("state machine returned %T", f.Response()))
		return
	}
	answers, err := fsm.CastBatchResponses(resp, len(batch))
	if err != nil {
		failCasts(batch, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err))
		return
	}
	for j, i := range order {
		batch[i].done <- castOutcome{resp: answers[j], index: f.Index()}
	}
}

func failCasts(batch []*pendingCast, err error) {
	for _, p := range batch {
		p.done <- castOutcome{err: err}
	}
}
