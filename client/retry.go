package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
)

// policy says whether a call may be sent again after an attempt that may have been applied.
type policy int

const (
	// idempotent calls (reads, writes carrying a request id, writes idempotent by nature) are
	// retried after any failure that is not a definitive answer.
	idempotent policy = iota
	// notIdempotent calls are retried only when the node says nothing happened (NO_LEADER).
	notIdempotent
)

// call describes one logical call for the retry loop.
type call struct {
	op       string // what the call does, for error messages
	route    route
	policy   policy
	write    bool // giving up after an attempt that may have been applied is ErrOutcomeUnknown
	stream   bool // no per-attempt timeout: a stream lasts as long as it has data
	attempts int  // 0 means Config.MaxAttempts
}

// attemptFunc runs one attempt on conn. Returning stop{err} ends the call with err as is.
type attemptFunc func(ctx context.Context, conn *grpc.ClientConn) error

// stop wraps an error that must end the call at once, unmapped: the caller's own callback
// failed, or a stream already delivered data and cannot be replayed.
type stop struct{ err error }

func (s stop) Error() string { return s.err.Error() }

// do runs fn until it succeeds, fails definitively, or the attempts or ctx run out. Between
// attempts it forgets the failed node and sleeps a jittered, growing backoff.
func (c *Client) do(ctx context.Context, cl call, fn attemptFunc) error {
	maxAttempts := cl.attempts
	if maxAttempts == 0 {
		maxAttempts = c.cfg.MaxAttempts
	}
	uncertain := false // some attempt of this write may have been applied
	for attempt := 1; ; attempt++ {
		endpoint := c.pick(ctx, cl.route)
		err := c.attempt(ctx, cl, endpoint, fn)
		if err == nil {
			return nil
		}
		if s, ok := errors.AsType[stop](err); ok {
			return s.err
		}
		if errors.Is(err, ErrClosed) || c.isClosed() {
			return fmt.Errorf("%s: %w", cl.op, ErrClosed)
		}
		e := asError(err, endpoint)
		if ctx.Err() != nil && e.Reason == "" {
			// The caller's context ended the attempt, which may have reached the node.
			return c.interrupted(ctx, cl, true, e)
		}
		v := classify(e)
		switch {
		case v == definitive:
			return e
		case v == maybeApplied && cl.policy == notIdempotent:
			return fmt.Errorf("%s: %w: %w", cl.op, ErrOutcomeUnknown, e)
		}
		uncertain = uncertain || v == maybeApplied
		c.forget(cl.route, endpoint)
		if attempt >= maxAttempts {
			return c.giveUp(cl, uncertain, attempt, e)
		}
		c.log.Debug("urne call failed, retrying", "op", cl.op, "attempt", attempt, "endpoint", endpoint, "err", e)
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return c.interrupted(ctx, cl, uncertain, e)
		}
	}
}

// attempt runs fn once on endpoint, bounded by the request timeout unless it is a stream.
func (c *Client) attempt(ctx context.Context, cl call, endpoint string, fn attemptFunc) error {
	cc, err := c.conn(endpoint)
	if err != nil {
		return err
	}
	if !cl.stream {
		var cancel context.CancelFunc
		ctx, cancel = c.attemptContext(ctx)
		defer cancel()
	}
	return fn(ctx, cc)
}

// attemptContext bounds one attempt by the request timeout. When the caller's deadline comes
// first, the attempt runs on the caller's context itself, so that its expiry is seen as the
// caller's and not as a timed-out attempt to retry.
func (c *Client) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= c.cfg.RequestTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// giveUp builds the error of a call whose attempts ran out.
func (c *Client) giveUp(cl call, uncertain bool, attempts int, last *Error) error {
	if attempts == 1 && !(cl.write && uncertain) {
		return fmt.Errorf("%s: %w", cl.op, last) // a one-shot call: the node's error says it all
	}
	if cl.write && uncertain {
		// last is not wrapped: it may be a NO_LEADER (ErrUnavailable), and this write must not
		// look as if it was certainly not applied.
		return fmt.Errorf("%s: %w after %d attempts; last error: %v", cl.op, ErrOutcomeUnknown, attempts, last)
	}
	return fmt.Errorf("%s: %w after %d attempts: %w", cl.op, ErrUnavailable, attempts, last)
}

// interrupted builds the error of a call whose context ended; inFlight says an attempt of it
// may have reached a node.
func (c *Client) interrupted(ctx context.Context, cl call, inFlight bool, last *Error) error {
	if cl.write && inFlight {
		return fmt.Errorf("%s: %w: %w (last error: %v)", cl.op, ErrOutcomeUnknown, ctx.Err(), last)
	}
	return fmt.Errorf("%s: %w (last error: %v)", cl.op, ctx.Err(), last)
}

// backoff returns the pause after the given attempt: Backoff doubled per attempt up to ten
// times Backoff, then jittered down by up to half so that clients do not retry in step.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.Backoff * maxBackoffFactor
	if attempt < 8 && c.cfg.Backoff<<(attempt-1) < d {
		d = c.cfg.Backoff << (attempt - 1)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
