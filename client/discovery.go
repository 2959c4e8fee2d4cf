package client

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/urne-vote/urne/transport/urnepb"
)

// LeaderInfo names the leader of the cluster.
type LeaderInfo struct {
	// ID is the leader's node id.
	ID string
	// Endpoint is the configured endpoint of the leader, or the gRPC address it advertises
	// when none of the configured endpoints is known to be the leader.
	Endpoint string
}

// routeKind says which node a call goes to.
type routeKind int

const (
	toLeader   routeKind = iota // writes and linearizable reads
	toAny                       // stale reads: the current endpoint, the next one on failure
	toEndpoint                  // one named endpoint, never another
	// toEach: work the receiving node does itself before it forwards a write (checking a
	// secret's slow hash, opening an envelope): each call goes to the next node in turn, so the cost spreads over the
	// cluster, and a retry goes to another node.
	toEach
)

type route struct {
	kind     routeKind
	endpoint string
}

// discovery is one leader discovery shared by every caller that needs it meanwhile, so that
// a failover does not send one Node call per in-flight request to every node.
type discovery struct {
	done   chan struct{}
	target string
	leader LeaderInfo
	err    error
}

// pick returns the endpoint of the next attempt on r.
func (c *Client) pick(ctx context.Context, r route) string {
	switch r.kind {
	case toEndpoint:
		return r.endpoint
	case toEach:
		c.mu.Lock()
		defer c.mu.Unlock()
		c.spread++
		return c.endpoints[c.spread%len(c.endpoints)]
	case toLeader:
		if target := c.cachedLeader(); target != "" {
			return target
		}
		if target, _, err := c.discover(ctx); err == nil {
			return target
		}
	}
	return c.current()
}

func (c *Client) cachedLeader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

func (c *Client) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[c.cursor]
}

// forget drops what made endpoint the choice for r after an attempt on it failed, so the
// next attempt goes to another node and rediscovers the leader.
func (c *Client) forget(r route, endpoint string) {
	if r.kind == toEndpoint {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == endpoint {
		c.leader = ""
	}
	if c.endpoints[c.cursor] == endpoint || r.kind == toLeader {
		c.cursor = (c.cursor + 1) % len(c.endpoints)
	}
}

// discover asks the nodes, starting at the current one, who leads. It returns the endpoint
// leader traffic should go to and remembers it.
func (c *Client) discover(ctx context.Context) (string, LeaderInfo, error) {
	c.mu.Lock()
	if d := c.discovering; d != nil {
		c.mu.Unlock()
		select {
		case <-d.done:
			return d.target, d.leader, d.err
		case <-ctx.Done():
			return "", LeaderInfo{}, ctx.Err()
		}
	}
	d := &discovery{done: make(chan struct{})}
	c.discovering = d
	c.mu.Unlock()

	d.target, d.leader, d.err = c.probe(ctx)
	c.mu.Lock()
	c.discovering = nil
	if d.err == nil {
		c.leader = d.target
	}
	c.mu.Unlock()
	close(d.done)
	return d.target, d.leader, d.err
}

// probe calls Node on each endpoint in turn until one names a leader.
func (c *Client) probe(ctx context.Context) (string, LeaderInfo, error) {
	var errs []error
	for _, ep := range c.rotation() {
		info, err := c.nodeOnce(ctx, ep)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if target, leader, ok := c.resolveLeader(ep, info); ok {
			return target, leader, nil
		}
		errs = append(errs, fmt.Errorf("%s (%s, raft state %s) knows no leader", ep, info.GetId(), info.GetRaftState()))
	}
	return "", LeaderInfo{}, fmt.Errorf("finding the leader: %w", errors.Join(errs...))
}

// rotation lists the endpoints starting at the cursor.
func (c *Client) rotation() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.endpoints)
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, c.endpoints[(c.cursor+i)%n])
	}
	return out
}

// nodeOnce is one Node call with the request timeout; it records the node id of endpoint.
func (c *Client) nodeOnce(ctx context.Context, endpoint string) (*urnepb.NodeInfo, error) {
	cc, err := c.conn(endpoint)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.attemptContext(ctx)
	defer cancel()
	info, err := urnepb.NewOperatorClient(cc).Node(ctx, &urnepb.NodeRequest{})
	if err != nil {
		return nil, asError(err, endpoint)
	}
	c.mu.Lock()
	c.nodeIDs[endpoint] = info.GetId()
	c.mu.Unlock()
	return info, nil
}

// resolveLeader turns the answer of the node at endpoint into the endpoint leader traffic goes
// to: the leader's own when the client can reach it, else the answering node, which forwards.
func (c *Client) resolveLeader(endpoint string, info *urnepb.NodeInfo) (string, LeaderInfo, bool) {
	id := info.GetLeaderId()
	if id == "" {
		return "", LeaderInfo{}, false
	}
	if info.GetId() == id {
		return endpoint, LeaderInfo{ID: id, Endpoint: endpoint}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ep, nodeID := range c.nodeIDs {
		if nodeID == id && c.configured[ep] {
			return ep, LeaderInfo{ID: id, Endpoint: ep}, true
		}
	}
	addr := info.GetLeaderGrpcAddress()
	if c.configured[addr] {
		return addr, LeaderInfo{ID: id, Endpoint: addr}, true
	}
	// The advertised address may be one this client cannot reach (another network, an
	// unspecified bind address): the answering node forwards leader traffic instead.
	if addr == "" || unspecifiedHost(addr) {
		addr = endpoint
	}
	return endpoint, LeaderInfo{ID: id, Endpoint: addr}, true
}

func unspecifiedHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}
