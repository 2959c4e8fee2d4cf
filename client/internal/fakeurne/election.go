package fakeurne

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"time"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// MaxBallot is the largest ballot the fake accepts.
const MaxBallot = 64 << 10

// FingerprintPage is the number of fingerprints per ListFingerprints message.
const FingerprintPage = 100

// write runs apply on the shared state as the leader would, with the node's faults.
func write[T any](n *Node, call Call, apply func(s *State) (T, error)) (T, error) {
	c := n.cluster
	c.mu.Lock()
	f := n.enter(call)
	var resp T
	var err error
	switch {
	case f != nil && !f.AfterApply:
		err = f.Err
	case c.leader == "":
		err = Status(urnepb.ReasonNoLeader, "no leader is known to node %s", n.ID)
	default:
		resp, err = apply(c.state)
		if f != nil {
			var zero T
			resp, err = zero, f.Err
		}
	}
	c.mu.Unlock()
	if f != nil && f.Then != nil {
		f.Then()
	}
	return resp, err
}

// read runs fn on the node's replica (stale) or on the shared state (linearizable).
func read[T any](n *Node, call Call, consistency urnepb.Consistency, fn func(s *State) (T, error)) (T, error) {
	c := n.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	if f := n.enter(call); f != nil {
		return zero, f.Err
	}
	if consistency == urnepb.Consistency_CONSISTENCY_STALE {
		return fn(n.view())
	}
	if c.leader == "" {
		return zero, Status(urnepb.ReasonNoLeader, "no leader is known to node %s", n.ID)
	}
	return fn(c.state)
}

func (n *Node) CreateElection(_ context.Context, req *urnepb.CreateElectionRequest) (*urnepb.ElectionState, error) {
	return write(n, Call{Method: "CreateElection"}, func(s *State) (*urnepb.ElectionState, error) {
		if s.ElectionID != "" && s.ElectionID != req.GetElectionId() {
			return nil, Status(urnepb.ReasonWrongElection, "this cluster runs election %q, not %q", s.ElectionID, req.GetElectionId())
		}
		if s.ElectionID == "" {
			s.ElectionID, s.Name, s.Phase = req.GetElectionId(), req.GetName(), urnepb.ElectionPhase_PHASE_DRAFT
			s.Index++
		}
		return electionState(s), nil
	})
}

func (n *Node) OpenElection(_ context.Context, req *urnepb.TransitionRequest) (*urnepb.ElectionState, error) {
	return n.transition("OpenElection", req, urnepb.ElectionPhase_PHASE_DRAFT, urnepb.ElectionPhase_PHASE_OPEN)
}

func (n *Node) CloseElection(_ context.Context, req *urnepb.TransitionRequest) (*urnepb.ElectionState, error) {
	return n.transition("CloseElection", req, urnepb.ElectionPhase_PHASE_OPEN, urnepb.ElectionPhase_PHASE_CLOSED)
}

func (n *Node) transition(method string, req *urnepb.TransitionRequest, from, to urnepb.ElectionPhase) (*urnepb.ElectionState, error) {
	return write(n, Call{Method: method, RequestID: req.GetRequestId()}, func(s *State) (*urnepb.ElectionState, error) {
		if s.ElectionID == "" {
			return nil, Status(urnepb.ReasonNoElection, "no election has been created")
		}
		if s.Phase != from && s.Phase != to {
			return nil, Status(urnepb.ReasonWrongPhase, "election is %s", s.Phase)
		}
		if s.Phase == from {
			s.Phase = to
			s.Index++
		}
		return electionState(s), nil
	})
}

func (n *Node) Cast(_ context.Context, req *urnepb.CastRequest) (*urnepb.CastResponse, error) {
	call := Call{Method: "Cast", RequestID: req.GetRequestId(), VoterID: req.GetVoterId()}
	return write(n, call, func(s *State) (*urnepb.CastResponse, error) {
		if first, ok := s.ByRequest[req.GetRequestId()]; ok {
			replay := proto.CloneOf(first)
			replay.Replayed = true
			return replay, nil
		}
		if err := checkCast(s, req); err != nil {
			return nil, err
		}
		s.Index++
		fp := sha256.Sum256(req.GetBallot())
		s.Box = append(s.Box, fp[:])
		s.Emarged[req.GetVoterId()] = time.Now().UnixNano()
		resp := &urnepb.CastResponse{Index: s.Index, Receipt: &urnepb.Receipt{
			ElectionId: s.ElectionID, Fingerprint: fp[:], EmargedAtUnixNano: s.Emarged[req.GetVoterId()]}}
		s.ByRequest[req.GetRequestId()] = resp
		return resp, nil
	})
}

func checkCast(s *State, req *urnepb.CastRequest) error {
	fp := sha256.Sum256(req.GetBallot())
	switch {
	case s.ElectionID == "":
		return Status(urnepb.ReasonNoElection, "no election has been created")
	case s.Phase != urnepb.ElectionPhase_PHASE_OPEN:
		return Status(urnepb.ReasonWrongPhase, "election is %s, not open", s.Phase)
	case len(req.GetBallot()) > MaxBallot:
		return Status(urnepb.ReasonBallotTooLarge, "ballot of %d bytes exceeds %d", len(req.GetBallot()), MaxBallot)
	case s.Voters[req.GetVoterId()] == nil:
		return Status(urnepb.ReasonUnknownVoter, "voter %q is not on the roll", req.GetVoterId())
	case s.Emarged[req.GetVoterId()] != 0:
		return Status(urnepb.ReasonAlreadyVoted, "voter %q has already voted", req.GetVoterId())
	case s.HasFingerprint(fp[:]):
		return Status(urnepb.ReasonDuplicateBallot, "this ballot is already in the box")
	}
	return nil
}

func (n *Node) ImportVoters(stream grpc.ClientStreamingServer[urnepb.ImportVotersRequest, urnepb.ImportVotersResponse]) error {
	if _, err := write(n, Call{Method: "ImportVoters"}, func(*State) (bool, error) { return true, nil }); err != nil {
		return err
	}
	resp := &urnepb.ImportVotersResponse{}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			n.cluster.mu.Lock()
			resp.TotalVoters = uint64(len(n.cluster.state.Voters))
			n.cluster.mu.Unlock()
			return stream.SendAndClose(resp)
		}
		if err != nil {
			return err
		}
		n.importChunk(req.GetVoters(), resp)
	}
}

func (n *Node) importChunk(voters []*urnepb.Voter, resp *urnepb.ImportVotersResponse) {
	c := n.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	c.importChunks = append(c.importChunks, len(voters))
	for _, v := range voters {
		if c.state.Voters[v.GetVoterId()] != nil {
			resp.Unchanged++
			continue
		}
		c.state.Voters[v.GetVoterId()] = v
		resp.Imported++
	}
	c.state.Index++
}

func (n *Node) GetElection(_ context.Context, req *urnepb.ReadRequest) (*urnepb.ElectionState, error) {
	return read(n, Call{Method: "GetElection"}, req.GetConsistency(), func(s *State) (*urnepb.ElectionState, error) {
		return electionState(s), nil
	})
}

func (n *Node) Counts(_ context.Context, req *urnepb.ReadRequest) (*urnepb.CountsResponse, error) {
	return read(n, Call{Method: "Counts"}, req.GetConsistency(), func(s *State) (*urnepb.CountsResponse, error) {
		return &urnepb.CountsResponse{Voters: uint64(len(s.Voters)), Emargements: uint64(len(s.Emarged)),
			Ballots: uint64(len(s.Box)), Phase: s.Phase, Index: s.Index}, nil
	})
}

func (n *Node) HasVoted(_ context.Context, req *urnepb.HasVotedRequest) (*urnepb.HasVotedResponse, error) {
	return read(n, Call{Method: "HasVoted", VoterID: req.GetVoterId()}, req.GetConsistency(), func(s *State) (*urnepb.HasVotedResponse, error) {
		at := s.Emarged[req.GetVoterId()]
		return &urnepb.HasVotedResponse{Voted: at != 0, EmargedAtUnixNano: at}, nil
	})
}

func (n *Node) ListFingerprints(req *urnepb.ReadRequest, stream grpc.ServerStreamingServer[urnepb.FingerprintPage]) error {
	box, err := read(n, Call{Method: "ListFingerprints"}, req.GetConsistency(), func(s *State) ([][]byte, error) {
		return append([][]byte(nil), s.Box...), nil
	})
	if err != nil {
		return err
	}
	for len(box) > 0 {
		page := box[:min(FingerprintPage, len(box))]
		box = box[len(page):]
		if err := stream.Send(&urnepb.FingerprintPage{Fingerprints: page}); err != nil {
			return err
		}
	}
	return nil
}

func electionState(s *State) *urnepb.ElectionState {
	return &urnepb.ElectionState{ElectionId: s.ElectionID, Name: s.Name, Phase: s.Phase, Index: s.Index}
}

// CastSealed answers as a node that opened the envelope and forwarded the cast to its
// leader would; the fake opens nothing: it records which node received the envelope.
func (n *Node) CastSealed(_ context.Context, req *urnepb.CastSealedRequest) (*urnepb.CastResponse, error) {
	return write(n, Call{Method: "CastSealed", RequestID: req.GetRequestId()}, func(s *State) (*urnepb.CastResponse, error) {
		s.Index++
		fp := sha256.Sum256(req.GetEnvelope())
		return &urnepb.CastResponse{Index: s.Index, Receipt: &urnepb.Receipt{
			ElectionId: s.ElectionID, Fingerprint: fp[:], ScrutinId: req.GetScrutinId()}}, nil
	})
}

// Login answers as a node that checked the secret and had the cluster record the login
// would; the fake checks nothing: it records which node received the login.
func (n *Node) Login(_ context.Context, req *urnepb.LoginRequest) (*urnepb.LoginResponse, error) {
	return write(n, Call{Method: "Login", RequestID: req.GetRequestId()}, func(s *State) (*urnepb.LoginResponse, error) {
		s.Index++
		return &urnepb.LoginResponse{ChallengeToken: "challenge-" + req.GetIdentifier()}, nil
	})
}
