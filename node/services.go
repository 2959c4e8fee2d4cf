package node

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// electionService serves election apps and organizers.
type electionService struct {
	urnepb.UnimplementedElectionServer
	n *Node
}

// apply proposes one command on behalf of the caller, whose principal the command carries
// (the state machine journals it, and the legal profile reserves some commands to some
// roles), and turns a refusal into a status.
func (s *electionService) apply(ctx context.Context, t fsmpb.CommandType, payload proto.Message) (*fsmpb.Response, uint64, error) {
	cmd, err := fsm.NewCommand(t, payload)
	if err != nil {
		return nil, 0, toStatus(err)
	}
	cmd.Actor = actorFrom(ctx)
	resp, index, err := s.n.Propose(ctx, cmd)
	if err == nil {
		err = responseError(resp)
	}
	if err != nil {
		s.n.metrics.rejected(err)
		return nil, 0, toStatus(err)
	}
	return resp, index, nil
}

func (s *electionService) CreateElection(ctx context.Context, req *urnepb.CreateElectionRequest) (*urnepb.ElectionState, error) {
	if req.ElectionId != "" && req.ElectionId != s.n.cfg.ElectionID {
		return nil, toStatus(fmt.Errorf("%w: this cluster runs election %q, not %q", fsm.ErrWrongElection, s.n.cfg.ElectionID, req.ElectionId))
	}
	resp, index, err := s.apply(ctx, fsmpb.CommandType_COMMAND_CREATE_ELECTION,
		&fsmpb.CreateElection{ElectionId: s.n.cfg.ElectionID, Name: req.Name, Profile: req.Profile})
	if err != nil {
		return nil, err
	}
	return electionState(resp.GetElection(), index), nil
}

// OpenElection opens with the digest of the binary this node runs: a sealed election opens
// only on the build it was sealed with.
func (s *electionService) OpenElection(ctx context.Context, _ *urnepb.TransitionRequest) (*urnepb.ElectionState, error) {
	build, err := s.n.auditor.build.BuildDigest()
	if err != nil {
		return nil, toStatus(err)
	}
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_OPEN_ELECTION, &fsmpb.Transition{BuildDigest: build})
}

func (s *electionService) CloseElection(ctx context.Context, _ *urnepb.TransitionRequest) (*urnepb.ElectionState, error) {
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_CLOSE_ELECTION, &fsmpb.Transition{})
}

func (s *electionService) Cast(ctx context.Context, req *urnepb.CastRequest) (*urnepb.CastResponse, error) {
	resp, index, err := s.apply(ctx, fsmpb.CommandType_COMMAND_CAST,
		&fsmpb.Cast{RequestId: req.RequestId, VoterId: req.VoterId, Ballot: req.Ballot})
	if err != nil {
		s.n.metrics.casts.WithLabelValues("rejected").Inc()
		return nil, err
	}
	c := resp.GetCast()
	result := "accepted"
	if c.GetReplayed() {
		result = "replayed"
	}
	s.n.metrics.casts.WithLabelValues(result).Inc()
	return &urnepb.CastResponse{Index: index, Replayed: c.GetReplayed(), Receipt: &urnepb.Receipt{
		ElectionId: s.n.cfg.ElectionID, Fingerprint: c.GetFingerprint(), EmargedAtUnixNano: c.GetEmargedAtUnixNano()}}, nil
}

func (s *electionService) GetElection(ctx context.Context, req *urnepb.ReadRequest) (*urnepb.ElectionState, error) {
	if err := s.n.ReadBarrier(ctx, req.Consistency); err != nil {
		return nil, toStatus(err)
	}
	e, index, err := s.n.fsm.Election()
	if err != nil {
		return nil, toStatus(err)
	}
	return electionState(e, index), nil
}

func (s *electionService) Counts(ctx context.Context, req *urnepb.ReadRequest) (*urnepb.CountsResponse, error) {
	if err := s.n.ReadBarrier(ctx, req.Consistency); err != nil {
		return nil, toStatus(err)
	}
	c, err := s.n.fsm.Counts()
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.CountsResponse{Voters: c.Voters, Emargements: c.Emargements, Ballots: c.Ballots,
		Phase: urnepb.ElectionPhase(c.Phase), Index: c.Index, OutboxPending: c.OutboxPending}, nil
}

func (s *electionService) HasVoted(ctx context.Context, req *urnepb.HasVotedRequest) (*urnepb.HasVotedResponse, error) {
	if err := s.n.ReadBarrier(ctx, req.Consistency); err != nil {
		return nil, toStatus(err)
	}
	voted, at, err := s.n.fsm.HasVoted(req.VoterId)
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.HasVotedResponse{Voted: voted, EmargedAtUnixNano: at}, nil
}

// fingerprintsPerPage bounds one streamed page of fingerprints (32 bytes each).
const fingerprintsPerPage = 4096

func (s *electionService) ListFingerprints(req *urnepb.ReadRequest, stream urnepb.Election_ListFingerprintsServer) error {
	if err := s.n.ReadBarrier(stream.Context(), req.Consistency); err != nil {
		return toStatus(err)
	}
	page := &urnepb.FingerprintPage{}
	err := s.n.fsm.ForEachFingerprint(func(fp []byte) error {
		page.Fingerprints = append(page.Fingerprints, append([]byte(nil), fp...))
		if len(page.Fingerprints) < fingerprintsPerPage {
			return nil
		}
		err := stream.Send(page)
		page = &urnepb.FingerprintPage{}
		return err
	})
	if err == nil && len(page.Fingerprints) > 0 {
		err = stream.Send(page)
	}
	return toStatus(err)
}

func electionState(e *fsmpb.ElectionResult, index uint64) *urnepb.ElectionState {
	st := &urnepb.ElectionState{ElectionId: e.GetElectionId(), Name: e.GetName(), Phase: urnepb.ElectionPhase(e.GetPhase()),
		CreatedAtUnixNano: e.GetCreatedAtUnixNano(), OpenedAtUnixNano: e.GetOpenedAtUnixNano(),
		ClosedAtUnixNano: e.GetClosedAtUnixNano(), Index: index, Profile: e.GetProfile(), BoxRoot: e.GetBoxRoot(),
		TalliedAtUnixNano: e.GetTalliedAtUnixNano(), ArchivedAtUnixNano: e.GetArchivedAtUnixNano(), ClosedBy: e.GetClosedBy(),
		ResultsDigest: e.GetResultsDigest(), MinutesDigest: e.GetMinutesDigest()}
	if e.GetConfig() != nil {
		st.Config, _ = convert(e.GetConfig(), &urnepb.ElectionConfig{})
	}
	if seal := e.GetSeal(); seal != nil {
		st.Seal = &urnepb.Seal{Digest: seal.Digest, BuildDigest: seal.BuildDigest, SealedAtUnixNano: seal.SealedAtUnixNano, SealedBy: seal.SealedBy}
	}
	return st
}

// internalService is what nodes ask each other.
type internalService struct {
	urnepb.UnimplementedInternalServer
	n *Node
}

func (s *internalService) Apply(ctx context.Context, req *urnepb.ApplyRequest) (*urnepb.ApplyResponse, error) {
	resp, index, err := s.n.applyForwarded(req.Command)
	if err != nil {
		return nil, toStatus(err)
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.ApplyResponse{Response: b, Index: index}, nil
}

func (s *internalService) ReadIndex(ctx context.Context, _ *urnepb.ReadIndexRequest) (*urnepb.ReadIndexResponse, error) {
	index, err := s.n.leaderReadIndex()
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.ReadIndexResponse{Index: index}, nil
}

func (s *internalService) ServerStats(ctx context.Context, _ *urnepb.ServerStatsRequest) (*urnepb.ServerStatsResponse, error) {
	return s.n.localStats(), nil
}
