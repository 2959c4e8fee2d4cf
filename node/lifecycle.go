package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// EnvelopeOpener takes the inner ballot out of the envelope a voter's device sealed to the
// cluster's envelope key, for one voting session. It checks the envelope's binding to the
// session and the inner ballot's format and size, and never decrypts the inner ballot.
type EnvelopeOpener interface {
	OpenEnvelope(sessionID string, envelope []byte) (inner, nonce []byte, err error)
}

// ReceiptSigner signs the accusé de réception of a cast with the cluster's signing key.
type ReceiptSigner interface {
	SignReceipt(electionID string, fingerprint []byte, emargedAt time.Time) ([]byte, error)
}

// Errors of the legal cast path on the node.
var (
	// ErrEnvelope: the envelope does not open for this session (tampered, another session,
	// another key) or its inner ballot is malformed.
	ErrEnvelope = errors.New("envelope refused")
	// ErrNotConfigured: this node lacks what the request needs (envelope key, receipt key).
	ErrNotConfigured = errors.New("not configured")
)

// maxEnvelopeSize bounds an envelope: the largest inner ballot plus the envelope's own bytes.
const maxEnvelopeSize = fsm.MaxBallotSize + 4096

// convert copies a message into another type with the same field numbers, through its
// encoding: the API's election model and the state machine's share their numbering.
func convert[T proto.Message](src proto.Message, dst T) (T, error) {
	b, err := proto.Marshal(src)
	if err == nil {
		err = proto.Unmarshal(b, dst)
	}
	if err != nil {
		return dst, fmt.Errorf("%w: %v", fsm.ErrInvalid, err)
	}
	return dst, nil
}

// stateCall proposes a command whose answer is the election's state.
func (s *electionService) stateCall(ctx context.Context, t fsmpb.CommandType, payload proto.Message) (*urnepb.ElectionState, error) {
	resp, index, err := s.apply(ctx, t, payload)
	if err != nil {
		return nil, err
	}
	return electionState(resp.GetElection(), index), nil
}

func (s *electionService) ConfigureElection(ctx context.Context, req *urnepb.ConfigureElectionRequest) (*urnepb.ElectionState, error) {
	cfg, err := convert(req.GetConfig(), &fsmpb.ElectionConfig{})
	if err != nil {
		return nil, toStatus(err)
	}
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_CONFIGURE_ELECTION, &fsmpb.ConfigureElection{Config: cfg})
}

func (s *electionService) PutScrutin(ctx context.Context, req *urnepb.PutScrutinRequest) (*urnepb.ElectionState, error) {
	sc, err := convert(req.GetScrutin(), &fsmpb.Scrutin{})
	if err != nil {
		return nil, toStatus(err)
	}
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_PUT_SCRUTIN, &fsmpb.PutScrutin{Scrutin: sc})
}

func (s *electionService) PutCandidateList(ctx context.Context, req *urnepb.PutCandidateListRequest) (*urnepb.ElectionState, error) {
	l, err := convert(req.GetList(), &fsmpb.CandidateList{})
	if err != nil {
		return nil, toStatus(err)
	}
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_PUT_CANDIDATE_LIST, &fsmpb.PutCandidateList{List: l})
}

func (s *electionService) SetElectionKey(ctx context.Context, req *urnepb.SetElectionKeyRequest) (*urnepb.ElectionState, error) {
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_SET_ELECTION_KEY, &fsmpb.SetElectionKey{PublicKey: req.PublicKey, Policy: req.Policy})
}

// SealElection seals with the digest of the binary this node runs.
func (s *electionService) SealElection(ctx context.Context, _ *urnepb.TransitionRequest) (*urnepb.ElectionState, error) {
	build, err := s.n.auditor.build.BuildDigest()
	if err != nil {
		return nil, toStatus(err)
	}
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_SEAL_ELECTION, &fsmpb.SealElection{BuildDigest: build})
}

func (s *electionService) RecordTally(ctx context.Context, req *urnepb.RecordTallyRequest) (*urnepb.ElectionState, error) {
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_RECORD_TALLY,
		&fsmpb.RecordTally{ResultsDigest: req.ResultsDigest, MinutesDigest: req.MinutesDigest})
}

func (s *electionService) ArchiveElection(ctx context.Context, req *urnepb.TransitionRequest) (*urnepb.ElectionState, error) {
	return s.stateCall(ctx, fsmpb.CommandType_COMMAND_ARCHIVE_ELECTION, &fsmpb.Transition{ArchiveDigest: req.ArchiveDigest})
}

func (s *electionService) ListScrutins(ctx context.Context, req *urnepb.ReadRequest) (*urnepb.ScrutinsResponse, error) {
	if err := s.n.ReadBarrier(ctx, req.Consistency); err != nil {
		return nil, toStatus(err)
	}
	scrutins, lists, err := s.n.fsm.Scrutins()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &urnepb.ScrutinsResponse{}
	for _, sc := range scrutins {
		api, err := convert(sc, &urnepb.Scrutin{})
		if err != nil {
			return nil, toStatus(err)
		}
		out.Scrutins = append(out.Scrutins, api)
		for _, l := range lists[sc.ScrutinId] {
			apiList, err := convert(l, &urnepb.CandidateList{})
			if err != nil {
				return nil, toStatus(err)
			}
			out.Lists = append(out.Lists, apiList)
		}
	}
	return out, nil
}

// CastSealed opens the envelope here, with the envelope key, and proposes the émargement and
// the inner ballot in one command; the committed receipt is signed with the cluster's key.
func (s *electionService) CastSealed(ctx context.Context, req *urnepb.CastSealedRequest) (*urnepb.CastResponse, error) {
	opener, signer := s.n.opts.Envelopes, s.n.opts.Receipts
	if opener == nil || signer == nil {
		return nil, toStatus(fmt.Errorf("%w: node %s has no envelope key or receipt key", ErrNotConfigured, s.n.cfg.NodeID))
	}
	if len(req.Envelope) == 0 || len(req.Envelope) > maxEnvelopeSize {
		return nil, toStatus(fmt.Errorf("%w: envelope of %d bytes, want 1 to %d", fsm.ErrInvalid, len(req.Envelope), maxEnvelopeSize))
	}
	if err := s.refuseAfterClose(); err != nil {
		s.n.metrics.casts.WithLabelValues("rejected").Inc()
		return nil, toStatus(err)
	}
	inner, nonce, err := opener.OpenEnvelope(sessionID(req.SessionToken), req.Envelope)
	if err != nil {
		s.n.metrics.casts.WithLabelValues("rejected").Inc()
		return nil, toStatus(fmt.Errorf("%w: %v", ErrEnvelope, err))
	}
	resp, index, err := s.apply(ctx, fsmpb.CommandType_COMMAND_CAST, &fsmpb.Cast{RequestId: req.RequestId,
		SessionHash: tokenHash(req.SessionToken), ScrutinId: req.ScrutinId, Ballot: inner, EnvelopeNonce: nonce})
	if err != nil {
		s.n.metrics.casts.WithLabelValues("rejected").Inc()
		return nil, err
	}
	c := resp.GetCast()
	receipt := &urnepb.Receipt{ElectionId: s.n.cfg.ElectionID, Fingerprint: c.Fingerprint,
		EmargedAtUnixNano: c.EmargedAtUnixNano, ScrutinId: c.ScrutinId}
	if receipt.Signature, err = signer.SignReceipt(receipt.ElectionId, c.Fingerprint, time.Unix(0, c.EmargedAtUnixNano)); err != nil {
		return nil, toStatus(fmt.Errorf("the ballot is cast but its receipt could not be signed; retry with the same request id: %w", err))
	}
	s.n.metrics.casts.WithLabelValues(castResult(c)).Inc()
	return &urnepb.CastResponse{Index: index, Replayed: c.Replayed, Receipt: receipt}, nil
}

// refuseAfterClose answers a sealed cast once this node has applied the close, without
// proposing it (voteOver is final), so that the refused command, ballot and session hash side
// by side, stays out of the raft log the close compacted. A node that has not applied the
// close yet proposes, and the state machine refuses.
func (s *electionService) refuseAfterClose() error {
	if !s.n.voteOver() {
		return nil
	}
	return fmt.Errorf("%w: election %q is %s, the command needs it open", fsm.ErrWrongPhase, s.n.cfg.ElectionID, fsm.PhaseName(s.n.fsm.Phase()))
}

func castResult(c *fsmpb.CastResult) string {
	if c.GetReplayed() {
		return "replayed"
	}
	return "accepted"
}

// entriesPerPage bounds one streamed page of émargements.
const entriesPerPage = 1024

// ExportEmargement streams the émargement list for the bureau: who voted in which scrutin, when.
func (s *electionService) ExportEmargement(req *urnepb.ReadRequest, stream urnepb.Election_ExportEmargementServer) error {
	if err := s.n.ReadBarrier(stream.Context(), req.Consistency); err != nil {
		return toStatus(err)
	}
	page := &urnepb.EmargementPage{}
	var sent uint64
	err := s.n.fsm.ForEachEmargement(func(e fsm.EmargementEntry) error {
		sent++
		page.Entries = append(page.Entries, &urnepb.EmargementEntry{VoterId: e.VoterID, Name: e.Name,
			DateOfBirth: e.DateOfBirth, ScrutinId: e.ScrutinID, EmargedAtUnixNano: e.EmargedAt})
		if len(page.Entries) < entriesPerPage {
			return nil
		}
		err := stream.Send(page)
		page = &urnepb.EmargementPage{}
		return err
	})
	if err == nil && len(page.Entries) > 0 {
		err = stream.Send(page)
	}
	s.n.recordDownload(stream.Context(), "export", "émargement list", fmt.Sprintf("%d entries", sent), err)
	return toStatus(err)
}
