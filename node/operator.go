package node

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// operatorService serves hosting operators and SREs.
type operatorService struct {
	urnepb.UnimplementedOperatorServer
	n *Node
}

func (s *operatorService) Node(ctx context.Context, _ *urnepb.NodeRequest) (*urnepb.NodeInfo, error) {
	return s.n.Info(), nil
}

// Info describes this node.
func (n *Node) Info() *urnepb.NodeInfo {
	_, leaderID := n.raft.LeaderWithID()
	st := n.raft.Stats()
	return &urnepb.NodeInfo{
		Id: n.cfg.NodeID, Datacenter: n.cfg.Datacenter, Role: string(n.cfg.Role),
		RaftState: n.raft.State().String(), Term: parseUint(st["term"]),
		LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.AppliedIndex(),
		LeaderId: string(leaderID), LeaderGrpcAddress: n.members.grpcAddress(string(leaderID)),
		ElectionId: n.cfg.ElectionID, Version: Version,
		GrpcAddress:  advertised(n.cfg.Bind.GRPC, n.cfg.Advertise.GRPC),
		RaftAddress:  advertised(n.cfg.Bind.Raft, n.cfg.Advertise.Raft),
		PrimaryKeyId: n.keys.PrimaryID(),
		LastLogTerm:  parseUint(st["last_log_term"]),
	}
}

func (s *operatorService) Peers(ctx context.Context, _ *urnepb.PeersRequest) (*urnepb.PeersResponse, error) {
	f := s.n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, toStatus(err)
	}
	_, leaderID := s.n.raft.LeaderWithID()
	out := &urnepb.PeersResponse{LeaderId: string(leaderID), ConfigurationIndex: f.Index()}
	for _, srv := range f.Configuration().Servers {
		m, _ := s.n.members.get(string(srv.ID))
		suffrage := "voter"
		if srv.Suffrage != raft.Voter {
			suffrage = "nonvoter"
		}
		out.Peers = append(out.Peers, &urnepb.Peer{
			Id: string(srv.ID), RaftAddress: string(srv.Address), GrpcAddress: m.meta.GRPC,
			Datacenter: m.meta.Datacenter, Role: string(m.meta.Role), Suffrage: suffrage,
			GossipStatus: orUnknown(m.status), Leader: srv.ID == leaderID,
		})
	}
	sort.Slice(out.Peers, func(i, j int) bool { return out.Peers[i].Id < out.Peers[j].Id })
	return out, nil
}

func (s *operatorService) TransferLeadership(ctx context.Context, req *urnepb.TransferLeadershipRequest) (*urnepb.TransferLeadershipResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return forwardToLeader(ctx, s.n, func(c urnepb.OperatorClient) (*urnepb.TransferLeadershipResponse, error) {
			return c.TransferLeadership(ctx, req)
		})
	}
	var f raft.Future
	if req.TargetId == "" {
		f = s.n.raft.LeadershipTransfer()
	} else {
		m, ok := s.n.members.get(req.TargetId)
		if !ok || m.meta.Raft == "" {
			return nil, toStatus(fmt.Errorf("%w: node %q", ErrNotFound, req.TargetId))
		}
		f = s.n.raft.LeadershipTransferToServer(raft.ServerID(req.TargetId), raft.ServerAddress(m.meta.Raft))
	}
	if err := f.Error(); err != nil {
		return nil, toStatus(fmt.Errorf("leadership transfer: %w", err))
	}
	id, err := s.n.waitNewLeader(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.TransferLeadershipResponse{NewLeaderId: id}, nil
}

// waitNewLeader waits until a leader other than this node is known.
func (n *Node) waitNewLeader(ctx context.Context) (string, error) {
	for {
		if _, id := n.raft.LeaderWithID(); id != "" && string(id) != n.cfg.NodeID {
			return string(id), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *operatorService) RemoveServer(ctx context.Context, req *urnepb.RemoveServerRequest) (*urnepb.RemoveServerResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return forwardToLeader(ctx, s.n, func(c urnepb.OperatorClient) (*urnepb.RemoveServerResponse, error) {
			return c.RemoveServer(ctx, req)
		})
	}
	if err := s.n.raft.RemoveServer(raft.ServerID(req.Id), 0, applyTimeout).Error(); err != nil {
		return nil, toStatus(fmt.Errorf("remove server %s: %w", req.Id, classifyApplyError(err)))
	}
	s.n.log.Info("server removed by operator", "id", req.Id)
	s.n.recordAction(ctx, &fsmpb.RecordEvent{Action: "remove server", Object: "node " + req.Id, Outcome: "ok"})
	return &urnepb.RemoveServerResponse{}, nil
}

func (s *operatorService) RotateKey(ctx context.Context, _ *urnepb.RotateKeyRequest) (*urnepb.RotateKeyResponse, error) {
	id, err := s.n.keys.Rotate()
	if err != nil {
		return nil, toStatus(fmt.Errorf("rotate key: %w", err))
	}
	s.n.log.Info("data key rotated", "primary_key_id", id)
	s.n.recordAction(ctx, &fsmpb.RecordEvent{Action: "key rotation", Object: "keyring of node " + s.n.cfg.NodeID,
		Outcome: "ok", Detail: fmt.Sprintf("new primary data key %d", id), Notice: fsmpb.Notice_NOTICE_SEALED_CHANGE})
	return &urnepb.RotateKeyResponse{NodeId: s.n.cfg.NodeID, PrimaryKeyId: id, KeyIds: s.n.keys.KeyIDs()}, nil
}

func (s *operatorService) StateDigest(ctx context.Context, _ *urnepb.StateDigestRequest) (*urnepb.StateDigestResponse, error) {
	index, digest, err := s.n.fsm.Digest()
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.StateDigestResponse{NodeId: s.n.cfg.NodeID, AppliedIndex: index, Digest: digest}, nil
}

// forwardToLeader runs an operator call on the current leader.
func forwardToLeader[T any](ctx context.Context, n *Node, call func(urnepb.OperatorClient) (*T, error)) (*T, error) {
	leaderID, err := n.waitLeader(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if leaderID == n.cfg.NodeID {
		return nil, toStatus(fmt.Errorf("%w: leadership is changing", ErrNoLeader))
	}
	conn, err := n.peers.get(n.members.grpcAddress(leaderID))
	if err != nil {
		return nil, toStatus(fmt.Errorf("%w: %v", ErrNoLeader, err))
	}
	return call(urnepb.NewOperatorClient(conn))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
