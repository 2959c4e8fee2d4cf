package node

import (
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/transport/urnepb"
)

// ballotsPerPage bounds one streamed page of the box: inner ballots are at most a few KiB.
const ballotsPerPage = 256

// ExportBox streams the frozen box to the bureau's tally: the header, then the inner ballots
// with their scrutin, in fingerprint order, from one read transaction.
func (s *electionService) ExportBox(req *urnepb.ReadRequest, stream urnepb.Election_ExportBoxServer) error {
	if err := s.n.ReadBarrier(stream.Context(), req.Consistency); err != nil {
		return toStatus(err)
	}
	page := &urnepb.BoxPage{}
	err := s.n.fsm.ExportBox(func(h fsm.BoxHeader) error {
		e := h.Election
		page.Header = &urnepb.BoxHeader{ElectionId: e.ElectionId, ElectionName: e.Name,
			OpenedAtUnixNano: e.OpenedAtUnixNano, ClosedAtUnixNano: e.ClosedAtUnixNano,
			BoxRoot: e.BoxRoot, Ballots: h.Ballots, Emargements: h.Emargements}
		return nil
	}, func(_ []byte, scrutinID string, inner []byte) error {
		page.Ballots = append(page.Ballots, &urnepb.BoxBallot{ScrutinId: scrutinID, Ballot: inner})
		if len(page.Ballots) < ballotsPerPage {
			return nil
		}
		err := stream.Send(page)
		page = &urnepb.BoxPage{}
		return err
	})
	if err == nil && (page.Header != nil || len(page.Ballots) > 0) {
		err = stream.Send(page)
	}
	return toStatus(err)
}
