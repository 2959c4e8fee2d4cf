package client

import (
	"context"
	"fmt"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/grpc"
)

func operator(cc *grpc.ClientConn) urnepb.OperatorClient { return urnepb.NewOperatorClient(cc) }

// onEndpoint is a call made once to one node: the caller (a status display, a poll loop)
// decides whether to ask again.
func onEndpoint(op, endpoint string, p policy) call {
	return call{op: op + " on " + endpoint, route: route{kind: toEndpoint, endpoint: endpoint}, policy: p, attempts: 1}
}

// Node describes the node at endpoint. It makes one attempt.
func (c *Client) Node(ctx context.Context, endpoint string) (*urnepb.NodeInfo, error) {
	var resp *urnepb.NodeInfo
	err := c.do(ctx, onEndpoint("node", endpoint, idempotent), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).Node(ctx, &urnepb.NodeRequest{})
		return err
	})
	if err == nil {
		c.mu.Lock()
		c.nodeIDs[endpoint] = resp.GetId()
		c.mu.Unlock()
	}
	return resp, err
}

// StateDigest returns the digest of the state machine of the node at endpoint and the
// applied index it covers. It makes one attempt.
func (c *Client) StateDigest(ctx context.Context, endpoint string) (*urnepb.StateDigestResponse, error) {
	var resp *urnepb.StateDigestResponse
	err := c.do(ctx, onEndpoint("state digest", endpoint, idempotent), func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).StateDigest(ctx, &urnepb.StateDigestRequest{})
		return err
	})
	return resp, err
}

// RotateKey adds a data key to the keyring of the node at endpoint and makes it primary. It
// makes one attempt and is not retried: each call adds a key.
func (c *Client) RotateKey(ctx context.Context, endpoint string) (*urnepb.RotateKeyResponse, error) {
	cl := onEndpoint("rotate key", endpoint, notIdempotent)
	cl.write = true
	var resp *urnepb.RotateKeyResponse
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).RotateKey(ctx, &urnepb.RotateKeyRequest{})
		return err
	})
	return resp, err
}

// Peers lists the raft configuration joined with gossip state, as the leader sees it.
func (c *Client) Peers(ctx context.Context) (*urnepb.PeersResponse, error) {
	var resp *urnepb.PeersResponse
	cl := call{op: "peers", route: route{kind: toLeader}, policy: idempotent}
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).Peers(ctx, &urnepb.PeersRequest{})
		return err
	})
	return resp, err
}

// TransferLeadership hands leadership to the node with id target, or to the most up-to-date
// follower when target is empty. It is retried only while the cluster has no leader, since a
// second transfer after an unknown outcome would move leadership again.
func (c *Client) TransferLeadership(ctx context.Context, target string) (*urnepb.TransferLeadershipResponse, error) {
	var resp *urnepb.TransferLeadershipResponse
	cl := call{op: "transfer leadership", route: route{kind: toLeader}, policy: notIdempotent, write: true}
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = operator(cc).TransferLeadership(ctx, &urnepb.TransferLeadershipRequest{TargetId: target})
		return err
	})
	c.mu.Lock()
	c.leader = "" // whatever happened, the leader may have changed
	c.mu.Unlock()
	return resp, err
}

// RemoveServer removes the node with the given id from the raft configuration. Removing a
// server that is already gone changes nothing, so the call is retried like any write.
func (c *Client) RemoveServer(ctx context.Context, id string) error {
	return c.do(ctx, leaderWrite("remove server "+id), func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := operator(cc).RemoveServer(ctx, &urnepb.RemoveServerRequest{Id: id})
		return err
	})
}

// Leader asks the nodes who leads, without using what the client remembers. While no node
// knows a leader (an election is under way) it asks again, up to MaxAttempts times.
func (c *Client) Leader(ctx context.Context) (LeaderInfo, error) {
	var last error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		_, leader, err := c.probe(ctx)
		if err == nil {
			return leader, nil
		}
		last = err
		if attempt == c.cfg.MaxAttempts || sleep(ctx, c.backoff(attempt)) != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return LeaderInfo{}, fmt.Errorf("leader: %w (last error: %v)", ctx.Err(), last)
	}
	return LeaderInfo{}, fmt.Errorf("leader: %w after %d attempts: %w", ErrUnavailable, c.cfg.MaxAttempts, last)
}
