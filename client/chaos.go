package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/urne-vote/urne/transport/urnepb"
)

// Chaos calls reach one node each and make one attempt: a chaos experiment says exactly
// which node gets which fault. They fail with ErrChaosDisabled on a node whose configuration
// does not enable chaos.

// ChaosInject adds a fault on the node at endpoint and returns its active faults.
func (c *Client) ChaosInject(ctx context.Context, endpoint string, f *urnepb.ChaosFault) (*urnepb.ChaosState, error) {
	return chaosCall(ctx, c, "chaos inject", endpoint, func(ctx context.Context, cc urnepb.ChaosClient) (*urnepb.ChaosState, error) {
		return cc.Inject(ctx, f)
	})
}

// ChaosHeal lifts every fault of the node at endpoint.
func (c *Client) ChaosHeal(ctx context.Context, endpoint string) (*urnepb.ChaosState, error) {
	return chaosCall(ctx, c, "chaos heal", endpoint, func(ctx context.Context, cc urnepb.ChaosClient) (*urnepb.ChaosState, error) {
		return cc.Heal(ctx, &urnepb.ChaosHealRequest{})
	})
}

// ChaosList returns the faults active on the node at endpoint.
func (c *Client) ChaosList(ctx context.Context, endpoint string) (*urnepb.ChaosState, error) {
	return chaosCall(ctx, c, "chaos list", endpoint, func(ctx context.Context, cc urnepb.ChaosClient) (*urnepb.ChaosState, error) {
		return cc.List(ctx, &urnepb.ChaosListRequest{})
	})
}

// ChaosKill ends the process of the node at endpoint, as SIGKILL would.
func (c *Client) ChaosKill(ctx context.Context, endpoint string) (*urnepb.ChaosKillResponse, error) {
	return chaosCall(ctx, c, "chaos kill", endpoint, func(ctx context.Context, cc urnepb.ChaosClient) (*urnepb.ChaosKillResponse, error) {
		return cc.Kill(ctx, &urnepb.ChaosKillRequest{})
	})
}

func chaosCall[T any](ctx context.Context, c *Client, op, endpoint string, fn func(context.Context, urnepb.ChaosClient) (*T, error)) (*T, error) {
	var resp *T
	err := c.do(ctx, onEndpoint(op, endpoint, notIdempotent), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = fn(ctx, urnepb.NewChaosClient(cc))
		return err
	})
	return resp, err
}
