package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/urne-vote/urne/transport/urnepb"
)

// RequestDestruction is the processor's step (operator certificate). Repeating it is harmless:
// the state machine answers the recorded request.
func (c *Client) RequestDestruction(ctx context.Context, reason string) (*urnepb.DestructionStatus, error) {
	return c.destructionCall(ctx, "request destruction", func(ctx context.Context, o urnepb.OperatorClient) (*urnepb.DestructionStatus, error) {
		return o.RequestDestruction(ctx, &urnepb.DestructionRequest{RequestId: NewRequestID(), Reason: reason})
	})
}

// AuthorizeDestruction is the controller's step (organizer certificate): once applied, every
// node destroys its data. Repeating it is harmless.
func (c *Client) AuthorizeDestruction(ctx context.Context, reason string) (*urnepb.DestructionStatus, error) {
	return c.destructionCall(ctx, "authorize destruction", func(ctx context.Context, o urnepb.OperatorClient) (*urnepb.DestructionStatus, error) {
		return o.AuthorizeDestruction(ctx, &urnepb.DestructionRequest{RequestId: NewRequestID(), Reason: reason})
	})
}

// RecordBackupErasure records what the operator destroyed of the managed backups.
func (c *Client) RecordBackupErasure(ctx context.Context, keys, files []string) (*urnepb.DestructionStatus, error) {
	return c.destructionCall(ctx, "record backup erasure", func(ctx context.Context, o urnepb.OperatorClient) (*urnepb.DestructionStatus, error) {
		return o.RecordBackupErasure(ctx, &urnepb.BackupErasure{Keys: keys, Files: files})
	})
}

// Destruction reads the destruction record and, once complete, the signed certificate.
func (c *Client) Destruction(ctx context.Context) (*urnepb.DestructionStatus, error) {
	cl, _ := readCall("destruction status", nil)
	var resp *urnepb.DestructionStatus
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).Destruction(ctx, &urnepb.DestructionStatusRequest{})
		return err
	})
	return resp, err
}

func (c *Client) destructionCall(ctx context.Context, op string, fn func(context.Context, urnepb.OperatorClient) (*urnepb.DestructionStatus, error)) (*urnepb.DestructionStatus, error) {
	var resp *urnepb.DestructionStatus
	err := c.do(ctx, leaderWrite(op), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = fn(ctx, operator(cc))
		return err
	})
	return resp, err
}
