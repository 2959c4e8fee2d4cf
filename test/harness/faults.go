package harness

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// InDatacenter lists the ids of the nodes of datacenter dc, in cluster file order.
func (c *Cluster) InDatacenter(dc string) []string {
	var ids []string
	for _, n := range c.File.Nodes {
		if n.Datacenter == dc {
			ids = append(ids, n.ID)
		}
	}
	return ids
}

// IDs lists every node of the cluster file, running or not.
func (c *Cluster) IDs() []string {
	ids := make([]string, len(c.File.Nodes))
	for i, n := range c.File.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// Endpoints lists the gRPC address of every node of the cluster file.
func (c *Cluster) Endpoints() []string { return c.File.Endpoints() }

// PartitionGroups cuts every node of a from every node of b, both ways.
func (c *Cluster) PartitionGroups(a, b []string) {
	for _, x := range a {
		for _, y := range b {
			c.Net.Partition(x, y)
		}
	}
}

// Others returns the ids of the cluster file not in ids.
func (c *Cluster) Others(ids ...string) []string {
	skip := map[string]bool{}
	for _, id := range ids {
		skip[id] = true
	}
	var out []string
	for _, id := range c.IDs() {
		if !skip[id] {
			out = append(out, id)
		}
	}
	return out
}

// Restart stops node id and starts it again on the same data.
func (c *Cluster) Restart(id string) {
	c.T.Helper()
	c.Stop(id)
	c.Start(id)
}

// WaitNewLeader waits until a running node other than old leads, and returns it.
func (c *Cluster) WaitNewLeader(old string, timeout time.Duration) string {
	c.T.Helper()
	var leader string
	Poll(c.T, timeout, func() error {
		for _, id := range c.Running() {
			n := c.Node(id)
			if id != old && n != nil && n.Raft().State() == raft.Leader {
				leader = id
				return nil
			}
		}
		return fmt.Errorf("no node other than %s leads", old)
	})
	return leader
}

// WaitCaughtUp waits until node id has applied at least what the leader had applied when
// the wait began.
func (c *Cluster) WaitCaughtUp(id string, timeout time.Duration) {
	c.T.Helper()
	leader := c.WaitLeader()
	target := c.Node(leader).FSM().AppliedIndex()
	Poll(c.T, timeout, func() error {
		n := c.Node(id)
		if n == nil {
			return fmt.Errorf("%s is not running", id)
		}
		if got := n.FSM().AppliedIndex(); got < target {
			return fmt.Errorf("%s applied %d of %d", id, got, target)
		}
		return nil
	})
}
