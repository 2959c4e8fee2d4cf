package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urne-vote/urne/transport/urnepb"
)

// replicaSettle bounds how long the check waits for every replica to reach the same applied
// index; past it, the replicas are not compared this time (a busy cluster is not a failure).
const replicaSettle = 10 * time.Second

// replicaView is one replica's answer.
type replicaView struct {
	id     string
	index  uint64
	digest string
	err    error
}

// checkReplicas compares the state digests of every server of the raft configuration, taken
// at the same applied index, and names the replicas that disagree with the majority. A digest
// walks a replica's whole database, so scheduled checks leave the comparison to the leader's:
// every replica computes one digest per interval, not one per server.
func (c *checker) checkReplicas(ctx context.Context, scheduled bool) *urnepb.IntegrityFinding {
	if scheduled && !c.leads() {
		return finding(kindReplicas, nil, "compared by the leader's scheduled check")
	}
	ids, err := c.n.serverIDs()
	if err != nil {
		return finding(kindReplicas, err, "")
	}
	ctx, cancel := context.WithTimeout(ctx, replicaSettle)
	defer cancel()
	var last []replicaView
	for {
		if same, views := c.sameIndex(ctx, ids); same {
			digests := c.collect(ctx, ids, c.digestOf)
			if reachable(digests) < 2 {
				return finding(kindReplicas, nil, "fewer than two replicas reachable: nothing to compare")
			}
			if allSameIndex(digests) {
				return judgeReplicas(digests)
			}
			last = digests
		} else {
			last = views
		}
		select {
		case <-ctx.Done():
			return finding(kindReplicas, nil, "not compared this time: the replicas did not reach the same applied index within "+
				replicaSettle.String()+" ("+describeIndexes(last)+")")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverIDs lists the servers of the raft configuration.
func (n *Node) serverIDs() ([]string, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read the raft configuration: %w", err)
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	sort.Strings(ids)
	return ids, nil
}

// sameIndex asks every replica its applied index (cheap) and tells whether the reachable
// ones agree, before the digests (a walk of each database) are asked for.
func (c *checker) sameIndex(ctx context.Context, ids []string) (bool, []replicaView) {
	views := c.collect(ctx, ids, c.indexOf)
	return reachable(views) >= 2 && allSameIndex(views), views
}

func (c *checker) collect(ctx context.Context, ids []string, ask func(context.Context, string) replicaView) []replicaView {
	out := make([]replicaView, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			out[i] = ask(ctx, id)
		})
	}
	wg.Wait()
	return out
}

func (c *checker) indexOf(ctx context.Context, id string) replicaView {
	if id == c.n.cfg.NodeID {
		return replicaView{id: id, index: c.n.fsm.AppliedIndex()}
	}
	op, err := c.n.operatorOf(id)
	if err != nil {
		return replicaView{id: id, err: err}
	}
	info, err := op.Node(ctx, &urnepb.NodeRequest{})
	if err != nil {
		return replicaView{id: id, err: err}
	}
	return replicaView{id: id, index: info.AppliedIndex}
}

func (c *checker) digestOf(ctx context.Context, id string) replicaView {
	if id == c.n.cfg.NodeID {
		index, d, err := c.n.fsm.Digest()
		return replicaView{id: id, index: index, digest: hex.EncodeToString(d), err: err}
	}
	op, err := c.n.operatorOf(id)
	if err != nil {
		return replicaView{id: id, err: err}
	}
	r, err := op.StateDigest(ctx, &urnepb.StateDigestRequest{})
	if err != nil {
		return replicaView{id: id, err: err}
	}
	return replicaView{id: id, index: r.AppliedIndex, digest: hex.EncodeToString(r.Digest)}
}

func (n *Node) operatorOf(id string) (urnepb.OperatorClient, error) {
	conn, err := n.peers.get(n.members.grpcAddress(id))
	if err != nil {
		return nil, fmt.Errorf("node %s unreachable: %w", id, err)
	}
	return urnepb.NewOperatorClient(conn), nil
}

func reachable(views []replicaView) int {
	n := 0
	for _, v := range views {
		if v.err == nil {
			n++
		}
	}
	return n
}

func allSameIndex(views []replicaView) bool {
	var index uint64
	for _, v := range views {
		if v.err != nil {
			continue
		}
		if index != 0 && v.index != index {
			return false
		}
		index = v.index
	}
	return true
}

// judgeReplicas groups the reachable replicas by digest: those outside the largest group are
// named; with no strict majority, every replica is.
func judgeReplicas(views []replicaView) *urnepb.IntegrityFinding {
	groups := map[string][]string{}
	var index uint64
	var unreachable []string
	for _, v := range views {
		if v.err != nil {
			unreachable = append(unreachable, v.id)
			continue
		}
		groups[v.digest] = append(groups[v.digest], v.id)
		index = v.index
	}
	note := ""
	if len(unreachable) > 0 {
		note = "; not reachable: " + strings.Join(unreachable, ", ")
	}
	if len(groups) == 1 {
		for d, ids := range groups {
			return finding(kindReplicas, nil, fmt.Sprintf("%d replicas agree at applied index %d (digest %.16s)%s", len(ids), index, d, note))
		}
	}
	return disagreement(groups, index, note)
}

func disagreement(groups map[string][]string, index uint64, note string) *urnepb.IntegrityFinding {
	digests := sortedKeys(groups)
	sort.SliceStable(digests, func(i, j int) bool { return len(groups[digests[i]]) > len(groups[digests[j]]) })
	majority := digests[0]
	strict := len(groups[majority]) > len(groups[digests[1]])
	f := &urnepb.IntegrityFinding{Kind: kindReplicas}
	var parts []string
	for _, d := range digests {
		if d == majority && strict {
			continue
		}
		f.Nodes = append(f.Nodes, groups[d]...)
		parts = append(parts, fmt.Sprintf("%s has state digest %.16s", strings.Join(groups[d], ", "), d))
	}
	sort.Strings(f.Nodes)
	if strict {
		f.Detail = fmt.Sprintf("replica %s diverges at applied index %d: %s, while %s agree on %.16s%s",
			strings.Join(f.Nodes, ", "), index, strings.Join(parts, "; "), strings.Join(groups[majority], ", "), majority, note)
	} else {
		f.Detail = fmt.Sprintf("replicas disagree at applied index %d with no majority: %s%s", index, strings.Join(parts, "; "), note)
	}
	return f
}

func describeIndexes(views []replicaView) string {
	var parts []string
	for _, v := range views {
		if v.err != nil {
			parts = append(parts, v.id+": unreachable")
		} else {
			parts = append(parts, fmt.Sprintf("%s: %d", v.id, v.index))
		}
	}
	return strings.Join(parts, ", ")
}
