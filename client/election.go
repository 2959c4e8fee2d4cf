package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/grpc"
)

// ReadOption changes where and how a read is served.
type ReadOption func(*readOptions)

type readOptions struct {
	stale    bool
	endpoint string
}

// Stale lets any node answer from its local replica at once. The answer may miss the latest
// writes; the default is a linearizable read served through the leader.
func Stale() ReadOption { return func(o *readOptions) { o.stale = true } }

// OnEndpoint sends the read to one node and never to another, e.g. to compare replicas
// (with Stale) in a consistency check.
func OnEndpoint(endpoint string) ReadOption { return func(o *readOptions) { o.endpoint = endpoint } }

// readCall builds the call and the consistency of a read.
func readCall(op string, opts []ReadOption) (call, urnepb.Consistency) {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	cl := call{op: op, route: route{kind: toLeader}, policy: idempotent}
	switch {
	case o.endpoint != "":
		cl.route = route{kind: toEndpoint, endpoint: o.endpoint}
	case o.stale:
		cl.route = route{kind: toAny}
	}
	if o.stale {
		return cl, urnepb.Consistency_CONSISTENCY_STALE
	}
	return cl, urnepb.Consistency_CONSISTENCY_LINEARIZABLE
}

// leaderWrite is the call of a write that may be retried with the same request id.
func leaderWrite(op string) call {
	return call{op: op, route: route{kind: toLeader}, policy: idempotent, write: true}
}

func election(cc *grpc.ClientConn) urnepb.ElectionClient { return urnepb.NewElectionClient(cc) }

// CreateElection records the election this cluster runs. It is idempotent for the same id.
func (c *Client) CreateElection(ctx context.Context, electionID, name string) (*urnepb.ElectionState, error) {
	req := &urnepb.CreateElectionRequest{ElectionId: electionID, Name: name}
	var resp *urnepb.ElectionState
	err := c.do(ctx, leaderWrite("create election"), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).CreateElection(ctx, req)
		return err
	})
	return resp, err
}

// OpenElection opens the election to casting.
func (c *Client) OpenElection(ctx context.Context) (*urnepb.ElectionState, error) {
	req := &urnepb.TransitionRequest{RequestId: NewRequestID()}
	var resp *urnepb.ElectionState
	err := c.do(ctx, leaderWrite("open election"), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).OpenElection(ctx, req)
		return err
	})
	return resp, err
}

// CloseElection closes the election: no cast is accepted afterwards.
func (c *Client) CloseElection(ctx context.Context) (*urnepb.ElectionState, error) {
	req := &urnepb.TransitionRequest{RequestId: NewRequestID()}
	var resp *urnepb.ElectionState
	err := c.do(ctx, leaderWrite("close election"), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).CloseElection(ctx, req)
		return err
	})
	return resp, err
}

// Cast records one opaque ballot and the voter's émargement under a new request id; see
// CastWithRequestID.
func (c *Client) Cast(ctx context.Context, voterID string, ballot []byte) (*urnepb.CastResponse, error) {
	return c.CastWithRequestID(ctx, NewRequestID(), voterID, ballot)
}

// CastWithRequestID casts with a request id chosen by the caller. Every retry, by this client
// or by the caller after ErrOutcomeUnknown, must reuse the id: the cluster then returns the
// first receipt (Replayed set) instead of recording a second ballot.
func (c *Client) CastWithRequestID(ctx context.Context, requestID, voterID string, ballot []byte) (*urnepb.CastResponse, error) {
	if requestID == "" {
		return nil, fmt.Errorf("cast: %w: empty request id", ErrInvalid)
	}
	req := &urnepb.CastRequest{RequestId: requestID, VoterId: voterID, Ballot: ballot}
	var resp *urnepb.CastResponse
	err := c.do(ctx, leaderWrite("cast"), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).Cast(ctx, req)
		return err
	})
	return resp, err
}

// GetElection reads the election's state.
func (c *Client) GetElection(ctx context.Context, opts ...ReadOption) (*urnepb.ElectionState, error) {
	cl, consistency := readCall("get election", opts)
	var resp *urnepb.ElectionState
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).GetElection(ctx, &urnepb.ReadRequest{Consistency: consistency})
		return err
	})
	return resp, err
}

// Counts reads the number of voters, émargements and ballots.
func (c *Client) Counts(ctx context.Context, opts ...ReadOption) (*urnepb.CountsResponse, error) {
	cl, consistency := readCall("counts", opts)
	var resp *urnepb.CountsResponse
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).Counts(ctx, &urnepb.ReadRequest{Consistency: consistency})
		return err
	})
	return resp, err
}

// HasVoted reads the émargement of one voter.
func (c *Client) HasVoted(ctx context.Context, voterID string, opts ...ReadOption) (*urnepb.HasVotedResponse, error) {
	cl, consistency := readCall("has voted", opts)
	req := &urnepb.HasVotedRequest{VoterId: voterID, Consistency: consistency}
	var resp *urnepb.HasVotedResponse
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = election(cc).HasVoted(ctx, req)
		return err
	})
	return resp, err
}

// Fingerprints calls fn with the fingerprint of every ballot in the box, in box order. An error
// from fn ends the listing and is returned as is. The listing is retried on another node only
// while fn has not been called yet, so fn never sees a fingerprint twice.
func (c *Client) Fingerprints(ctx context.Context, fn func(fingerprint []byte) error, opts ...ReadOption) error {
	cl, consistency := readCall("list fingerprints", opts)
	cl.stream = true
	return c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) error {
		ctx, cancel := context.WithCancel(ctx) // ends the stream when fn fails
		defer cancel()
		stream, err := election(cc).ListFingerprints(ctx, &urnepb.ReadRequest{Consistency: consistency})
		if err != nil {
			return err
		}
		return deliverFingerprints(stream, cc.Target(), fn)
	})
}

func deliverFingerprints(stream grpc.ServerStreamingClient[urnepb.FingerprintPage], endpoint string, fn func([]byte) error) error {
	delivered := 0
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && delivered > 0 {
			return stop{fmt.Errorf("list fingerprints: stream broke after %d fingerprints: %w", delivered, asError(err, endpoint))}
		}
		if err != nil {
			return err
		}
		for _, fp := range page.GetFingerprints() {
			if err := fn(fp); err != nil {
				return stop{err}
			}
			delivered++
		}
	}
}
