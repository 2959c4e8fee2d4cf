package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/urne-vote/urne/transport/urnepb"
)

func auditAPI(cc *grpc.ClientConn) urnepb.AuditClient { return urnepb.NewAuditClient(cc) }

// RegisterInfo says which node and election a register listing came from.
type RegisterInfo struct {
	NodeID     string
	ElectionID string
}

// RegisterEntries calls fn with every entry of the activity register from entry fromSeq on,
// in their stored form (decode with audit.Entry.UnmarshalBinary). Like Fingerprints, the
// listing moves to another node only while fn has not been called yet.
func (c *Client) RegisterEntries(ctx context.Context, fromSeq uint64, fn func(info RegisterInfo, entry []byte) error, opts ...ReadOption) error {
	cl, consistency := readCall("register entries", opts)
	cl.stream = true
	req := &urnepb.RegisterEntriesRequest{FromSeq: fromSeq, Consistency: consistency}
	return c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := auditAPI(cc).RegisterEntries(ctx, req)
		if err != nil {
			return err
		}
		return deliverEntries(stream, cc.Target(), fn)
	})
}

func deliverEntries(stream grpc.ServerStreamingClient[urnepb.RegisterPage], endpoint string, fn func(RegisterInfo, []byte) error) error {
	delivered := 0
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && delivered > 0 {
			return stop{fmt.Errorf("register entries: stream broke after %d entries: %w", delivered, asError(err, endpoint))}
		}
		if err != nil {
			return err
		}
		info := RegisterInfo{NodeID: page.GetNodeId(), ElectionID: page.GetElectionId()}
		for _, e := range page.GetEntries() {
			if err := fn(info, e); err != nil {
				return stop{err}
			}
			delivered++
		}
	}
}

// CheckIntegrity has the node at endpoint run its integrity check now. It makes one attempt.
func (c *Client) CheckIntegrity(ctx context.Context, endpoint string) (*urnepb.IntegrityReport, error) {
	var resp *urnepb.IntegrityReport
	err := c.do(ctx, onEndpoint("integrity check", endpoint, idempotent), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = auditAPI(cc).CheckIntegrity(ctx, &urnepb.CheckIntegrityRequest{})
		return err
	})
	return resp, err
}
