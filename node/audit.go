package node

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc/peer"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/auth"
	"github.com/urne-vote/urne/transport/urnepb"
)

// actorFrom is the caller of a request as the activity register names it: the principal of
// its verified certificate ("client:organizer", "node:dc1-a") and the address it called from.
func actorFrom(ctx context.Context) *fsmpb.Actor {
	a := &fsmpb.Actor{}
	if id, ok := auth.IdentityFrom(ctx); ok {
		a.Principal = id.Kind + ":" + id.Name
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		a.Ip = p.Addr.String()
		if host, _, err := net.SplitHostPort(a.Ip); err == nil {
			a.Ip = host
		}
	}
	if a.Principal == "" && a.Ip == "" {
		return nil
	}
	return a
}

// selfActor names this node as the author of the commands it proposes on its own.
func (n *Node) selfActor() *fsmpb.Actor {
	return &fsmpb.Actor{Principal: "node:" + n.cfg.NodeID}
}

// auditService serves the activity register and the integrity check.
type auditService struct {
	urnepb.UnimplementedAuditServer
	n *Node
}

// registerPageSize bounds the entries of one streamed page.
const registerPageSize = 512

func (s *auditService) RegisterEntries(req *urnepb.RegisterEntriesRequest, stream urnepb.Audit_RegisterEntriesServer) error {
	if err := s.n.ReadBarrier(stream.Context(), req.Consistency); err != nil {
		return toStatus(err)
	}
	page := s.newPage()
	err := s.n.fsm.RegisterEntries(req.FromSeq, func(e *audit.Entry) error {
		b, err := e.MarshalBinary()
		if err != nil {
			return err
		}
		page.Entries = append(page.Entries, b)
		if len(page.Entries) < registerPageSize {
			return nil
		}
		err = stream.Send(page)
		page = s.newPage()
		return err
	})
	if err == nil && len(page.Entries) > 0 {
		err = stream.Send(page)
	}
	s.n.recordDownload(stream.Context(), "export", "activity register", fmt.Sprintf("from entry %d", req.FromSeq), err)
	return toStatus(err)
}

func (s *auditService) newPage() *urnepb.RegisterPage {
	return &urnepb.RegisterPage{NodeId: s.n.cfg.NodeID, ElectionId: s.n.cfg.ElectionID}
}

// CheckIntegrity runs the node's integrity check now, on behalf of the caller.
func (s *auditService) CheckIntegrity(ctx context.Context, _ *urnepb.CheckIntegrityRequest) (*urnepb.IntegrityReport, error) {
	trigger := "on-demand"
	if a := actorFrom(ctx); a != nil && a.Principal != "" {
		trigger = "on-demand (" + a.Principal + ")"
	}
	return s.n.auditor.checker.check(ctx, trigger), nil
}

// recordAction records in the register an action served outside the state machine (a key
// rotation, an export), on behalf of the caller. A failure to record is logged: the action
// itself has already happened.
func (n *Node) recordAction(ctx context.Context, ev *fsmpb.RecordEvent) {
	ev.Detail = boundText(ev.Detail)
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_RECORD_EVENT, ev)
	if err != nil {
		n.log.Warn("recording an action failed", "action", ev.Action, "err", err)
		return
	}
	cmd.Actor = actorFrom(ctx)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*applyTimeout)
	defer cancel()
	if _, _, err := n.Propose(ctx, cmd); err != nil {
		n.log.Warn("recording an action in the register failed", "action", ev.Action, "err", err)
	}
}

// recordDownload records, on behalf of the caller, that a copy of election data left this
// node (a register or émargement export, a backup), or failed to.
func (n *Node) recordDownload(ctx context.Context, action, object, detail string, err error) {
	ev := &fsmpb.RecordEvent{Action: action, Object: object, Outcome: "ok", Detail: detail + ", served by node " + n.cfg.NodeID}
	if err != nil {
		ev.Outcome = "failed"
		ev.Detail += ": " + err.Error()
	}
	n.recordAction(ctx, ev)
}
