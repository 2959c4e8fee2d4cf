package fsm

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Bounds of a CAST_BATCH. A batch of MaxCastsPerBatch ballots of MaxCastBatchBytes in all
// stays well under MaxCommandSize, so a batch the leader builds always encodes.
const (
	MaxCastsPerBatch  = 1024
	MaxCastBatchBytes = 2 << 20
)

// NewCastBatch builds the CAST_BATCH of casts, each a CAST command as its caller sent it
// (validated, not stamped), in an order drawn from rnd: box order, register order and the
// order of the answers follow the shuffle, never the order of arrival. order[j] is the index
// in casts of the batch's j-th cast, so the proposer can hand each answer to its caller.
func NewCastBatch(casts []*fsmpb.Command, rnd io.Reader) (cmd *fsmpb.Command, order []int, err error) {
	if len(casts) == 0 || len(casts) > MaxCastsPerBatch {
		return nil, nil, fmt.Errorf("%w: a cast batch holds 1 to %d casts, not %d", ErrInvalid, MaxCastsPerBatch, len(casts))
	}
	order, err = shuffledOrder(len(casts), rnd)
	if err != nil {
		return nil, nil, err
	}
	p := &fsmpb.CastBatch{Casts: make([]*fsmpb.BatchedCast, len(casts))}
	for j, i := range order {
		c := casts[i]
		if c.Type != fsmpb.CommandType_COMMAND_CAST {
			return nil, nil, fmt.Errorf("%w: a cast batch takes casts, not %s", ErrInvalid, c.Type)
		}
		p.Casts[j] = &fsmpb.BatchedCast{Cast: c.Payload, Actor: c.Actor}
	}
	cmd, err = NewCommand(fsmpb.CommandType_COMMAND_CAST_BATCH, p)
	return cmd, order, err
}

// shuffledOrder is a uniform permutation of 0..n-1 (Fisher-Yates) drawn from rnd, which the
// leader passes (the system's cryptographic source: the order must not be guessable; this
// package never draws randomness itself). The random words are read at once; a word
// rejected for bias draws a fresh one.
func shuffledOrder(n int, rnd io.Reader) ([]int, error) {
	if rnd == nil {
		return nil, fmt.Errorf("%w: a cast batch needs a source of randomness", ErrInvalid)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	words := make([]byte, 8*n)
	if _, err := io.ReadFull(rnd, words); err != nil {
		return nil, fmt.Errorf("draw the order of a cast batch: %w", err)
	}
	for i := n - 1; i > 0; i-- {
		j, err := uniform(rnd, uint64(i+1), words[8*i:8*i+8])
		if err != nil {
			return nil, err
		}
		order[i], order[j] = order[j], order[i]
	}
	return order, nil
}

// uniform maps the word in buf to [0, n) without modulo bias, redrawing buf from rnd while
// it falls in the biased tail.
func uniform(rnd io.Reader, n uint64, buf []byte) (int, error) {
	limit := ^uint64(0) - ^uint64(0)%n
	for {
		if v := binary.BigEndian.Uint64(buf); v < limit {
			return int(v % n), nil
		}
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return 0, fmt.Errorf("draw the order of a cast batch: %w", err)
		}
	}
}

// CastBatchResponses splits the answer to a CAST_BATCH into one answer per cast, in the
// batch's order. A batch refused whole (it did not parse) gives every cast that refusal.
func CastBatchResponses(resp *fsmpb.Response, n int) ([]*fsmpb.Response, error) {
	out := make([]*fsmpb.Response, n)
	r := resp.GetCastBatch()
	if r == nil {
		if resp.GetCode() == fsmpb.ResponseCode_RESPONSE_OK {
			return nil, fmt.Errorf("cast batch answered without per-cast results")
		}
		for i := range out {
			out[i] = resp
		}
		return out, nil
	}
	if len(r.Responses) != n {
		return nil, fmt.Errorf("cast batch of %d casts answered %d results", n, len(r.Responses))
	}
	return r.Responses, nil
}

// The batch's handler applies casts through the table, so it joins the table at init.
func init() {
	handlers[fsmpb.CommandType_COMMAND_CAST_BATCH] = typed(newMessage[fsmpb.CastBatch], checkCastBatch, applyCastBatch)
}

func checkCastBatch(p *fsmpb.CastBatch) error {
	if n := len(p.Casts); n == 0 || n > MaxCastsPerBatch {
		return fmt.Errorf("%w: a cast batch holds 1 to %d casts, not %d", ErrInvalid, MaxCastsPerBatch, n)
	}
	return nil
}

// applyCastBatch applies each cast of the batch as the CAST command it was, in the batch's
// order and in the batch's transaction, with the batch's stamp: a second ballot of a voter
// is refused, a retried request answers its first receipt, inside one batch as across
// batches, and a refused cast leaves nothing but its register entry, exactly as alone. Each
// cast gets its own register entry, so the register reads the same whether casts came
// batched or not.
func applyCastBatch(s *applyState, c *fsmpb.Command, p *fsmpb.CastBatch) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	out := &fsmpb.CastBatchResult{Responses: make([]*fsmpb.Response, len(p.Casts))}
	for i, item := range p.Casts {
		cast := &fsmpb.Command{Version: c.Version, Type: fsmpb.CommandType_COMMAND_CAST,
			Payload: item.Cast, StampedAtUnixNano: c.StampedAtUnixNano, Actor: item.Actor}
		resp, err := s.apply(cast)
		if err != nil {
			return nil, err
		}
		if err := s.record(s.index, cast, resp); err != nil {
			return nil, asStorageErr(err)
		}
		out.Responses[i] = resp
	}
	return &fsmpb.Response{Result: &fsmpb.Response_CastBatch{CastBatch: out}}, nil
}

// asStorageErr keeps a failure after a first write fatal: the batch cannot be refused
// whole once some of its casts are in the transaction.
func asStorageErr(err error) error {
	if _, ok := err.(*storageError); ok {
		return err
	}
	return storageErr("%w", err)
}
