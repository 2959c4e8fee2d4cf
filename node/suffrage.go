package node

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/transport/urnepb"
)

// maxHold bounds a nonvoter hold, so a drill that dies never leaves a server without its vote
// for long.
const maxHold = time.Hour

// suffrageHolds are servers autopilot must not promote to voter until a deadline, although
// their role votes: a drill has moved their vote elsewhere on purpose. Holds live in the
// memory of each node (a restarted node forgets them), and expire by themselves.
type suffrageHolds struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (h *suffrageHolds) set(id string, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.until == nil {
		h.until = map[string]time.Time{}
	}
	if d <= 0 {
		delete(h.until, id)
		return
	}
	h.until[id] = time.Now().Add(d)
}

func (h *suffrageHolds) held(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.until[id])
}

func (h *suffrageHolds) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id, t := range h.until {
		if time.Now().Before(t) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (s *operatorService) HoldNonvoter(ctx context.Context, req *urnepb.HoldNonvoterRequest) (*urnepb.HoldNonvoterResponse, error) {
	d := time.Duration(req.GetSeconds()) * time.Second
	if req.GetId() == "" || d > maxHold {
		return nil, toStatus(fmt.Errorf("%w: hold a named server for at most %v", ErrInvalidRequest, maxHold))
	}
	s.n.holds.set(req.GetId(), d)
	s.n.log.Info("nonvoter hold", "id", req.GetId(), "seconds", req.GetSeconds())
	return &urnepb.HoldNonvoterResponse{NodeId: s.n.cfg.NodeID, Held: s.n.holds.list()}, nil
}

// ChangeSuffrage makes a server of the configuration a voter or a nonvoter, on the leader.
func (s *operatorService) ChangeSuffrage(ctx context.Context, req *urnepb.ChangeSuffrageRequest) (*urnepb.ChangeSuffrageResponse, error) {
	n := s.n
	if n.raft.State() != raft.Leader {
		return forwardToLeader(ctx, n, func(c urnepb.OperatorClient) (*urnepb.ChangeSuffrageResponse, error) {
			return c.ChangeSuffrage(ctx, req)
		})
	}
	id := raft.ServerID(req.GetId())
	if !req.GetVoter() && string(id) == n.cfg.NodeID {
		return nil, toStatus(fmt.Errorf("%w: %s leads; transfer leadership before taking its vote", ErrInvalidRequest, id))
	}
	srv, err := n.configured(id)
	if err != nil {
		return nil, toStatus(err)
	}
	var f raft.IndexFuture
	if req.GetVoter() {
		f = n.raft.AddVoter(id, srv.Address, 0, applyTimeout)
	} else {
		f = n.raft.DemoteVoter(id, 0, applyTimeout)
	}
	if err := f.Error(); err != nil {
		return nil, toStatus(fmt.Errorf("change the suffrage of %s: %w", id, classifyApplyError(err)))
	}
	n.log.Info("suffrage changed by operator", "id", id, "voter", req.GetVoter(), "index", f.Index())
	return &urnepb.ChangeSuffrageResponse{ConfigurationIndex: f.Index()}, nil
}

// configured returns the server id of the current raft configuration.
func (n *Node) configured(id raft.ServerID) (raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Server{}, err
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == id {
			return srv, nil
		}
	}
	return raft.Server{}, fmt.Errorf("%w: %s is not in the raft configuration", ErrNotFound, id)
}
