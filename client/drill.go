package client

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/urne-vote/urne/transport/urnepb"
)

// RecordDrill stores a drill report in the cluster and returns the index it was committed at.
// It is retried only when the cluster said nothing happened: a second copy would count as a
// second run.
func (c *Client) RecordDrill(ctx context.Context, r *urnepb.DrillReport) (uint64, error) {
	var resp *urnepb.RecordDrillResponse
	cl := call{op: "record drill " + r.GetName(), route: route{kind: toLeader}, policy: notIdempotent, write: true}
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).RecordDrill(ctx, &urnepb.RecordDrillRequest{Report: r})
		return err
	})
	return resp.GetIndex(), err
}

// DrillStatus returns the record of every drill that ever ran.
func (c *Client) DrillStatus(ctx context.Context, opts ...ReadOption) (*urnepb.DrillStatusResponse, error) {
	cl, consistency := readCall("drill status", opts)
	var resp *urnepb.DrillStatusResponse
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).DrillStatus(ctx, &urnepb.DrillStatusRequest{Consistency: consistency})
		return err
	})
	return resp, err
}

// HoldNonvoter asks the node at endpoint not to promote server id to voter for d (0 releases).
// Holds are per node: hold on every node so that any leader respects it.
func (c *Client) HoldNonvoter(ctx context.Context, endpoint, id string, d time.Duration) (*urnepb.HoldNonvoterResponse, error) {
	var resp *urnepb.HoldNonvoterResponse
	err := c.do(ctx, onEndpoint("hold nonvoter", endpoint, idempotent), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).HoldNonvoter(ctx, &urnepb.HoldNonvoterRequest{Id: id, Seconds: uint32(d / time.Second)})
		return err
	})
	return resp, err
}

// ChangeSuffrage makes server id a voter or a nonvoter. The change has one outcome whatever
// the number of attempts, so it is retried like any idempotent write.
func (c *Client) ChangeSuffrage(ctx context.Context, id string, voter bool) (uint64, error) {
	var resp *urnepb.ChangeSuffrageResponse
	err := c.do(ctx, leaderWrite("change suffrage of "+id), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).ChangeSuffrage(ctx, &urnepb.ChangeSuffrageRequest{Id: id, Voter: voter})
		return err
	})
	return resp.GetConfigurationIndex(), err
}
