package fakeurne

import (
	"context"

	"github.com/urne-vote/urne/transport/urnepb"
)

func (n *Node) Node(context.Context, *urnepb.NodeRequest) (*urnepb.NodeInfo, error) {
	c := n.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := n.enter(Call{Method: "Node"}); f != nil {
		return nil, f.Err
	}
	info := &urnepb.NodeInfo{Id: n.ID, RaftState: "Follower", LeaderId: c.leader, ElectionId: c.ElectionID,
		GrpcAddress: n.Addr, AppliedIndex: n.applied(), CommitIndex: c.state.Index, LastIndex: c.state.Index}
	if leader := c.Node(c.leader); leader != nil {
		info.LeaderGrpcAddress = leader.Addr
	}
	if c.leader == n.ID {
		info.RaftState = "Leader"
	}
	return info, nil
}

// applied is the index the node reports as applied. Caller holds cluster.mu.
func (n *Node) applied() uint64 {
	idx := n.view().Index
	if n.lag > idx {
		return 0
	}
	return idx - n.lag
}

func (n *Node) Peers(context.Context, *urnepb.PeersRequest) (*urnepb.PeersResponse, error) {
	return read(n, Call{Method: "Peers"}, urnepb.Consistency_CONSISTENCY_LINEARIZABLE, func(*State) (*urnepb.PeersResponse, error) {
		resp := &urnepb.PeersResponse{LeaderId: n.cluster.leader}
		for _, p := range n.cluster.Nodes {
			resp.Peers = append(resp.Peers, &urnepb.Peer{Id: p.ID, GrpcAddress: p.Addr, Suffrage: "voter",
				GossipStatus: "alive", Leader: p.ID == n.cluster.leader})
		}
		return resp, nil
	})
}

func (n *Node) TransferLeadership(_ context.Context, req *urnepb.TransferLeadershipRequest) (*urnepb.TransferLeadershipResponse, error) {
	return write(n, Call{Method: "TransferLeadership"}, func(*State) (*urnepb.TransferLeadershipResponse, error) {
		target := req.GetTargetId()
		if n.cluster.Node(target) == nil {
			return nil, Status(urnepb.ReasonNotFound, "no node %q", target)
		}
		n.cluster.leader = target
		return &urnepb.TransferLeadershipResponse{NewLeaderId: target}, nil
	})
}

func (n *Node) RemoveServer(_ context.Context, req *urnepb.RemoveServerRequest) (*urnepb.RemoveServerResponse, error) {
	return write(n, Call{Method: "RemoveServer", VoterID: req.GetId()}, func(*State) (*urnepb.RemoveServerResponse, error) {
		return &urnepb.RemoveServerResponse{}, nil
	})
}

func (n *Node) RotateKey(context.Context, *urnepb.RotateKeyRequest) (*urnepb.RotateKeyResponse, error) {
	c := n.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := n.enter(Call{Method: "RotateKey"}); f != nil {
		return nil, f.Err
	}
	c.keyRotations++
	return &urnepb.RotateKeyResponse{NodeId: n.ID, PrimaryKeyId: uint32(c.keyRotations + 1)}, nil
}

func (n *Node) StateDigest(context.Context, *urnepb.StateDigestRequest) (*urnepb.StateDigestResponse, error) {
	c := n.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := n.enter(Call{Method: "StateDigest"}); f != nil {
		return nil, f.Err
	}
	digest := n.view().Digest()
	if n.digest != nil {
		digest = n.digest
	}
	return &urnepb.StateDigestResponse{NodeId: n.ID, AppliedIndex: n.applied(), Digest: digest}, nil
}
