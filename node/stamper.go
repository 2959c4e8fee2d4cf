package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/tsa"
)

// stampAfter are the commands after which the leader stamps the register's head at once:
// the milestones of the election. A tick is proposed only when the closing time has come,
// so an accepted one is the close on time.
var stampAfter = map[fsmpb.CommandType]bool{
	fsmpb.CommandType_COMMAND_CREATE_ELECTION:  true,
	fsmpb.CommandType_COMMAND_SEAL_ELECTION:    true,
	fsmpb.CommandType_COMMAND_OPEN_ELECTION:    true,
	fsmpb.CommandType_COMMAND_CLOSE_ELECTION:   true,
	fsmpb.CommandType_COMMAND_TICK:             true,
	fsmpb.CommandType_COMMAND_RECORD_TALLY:     true,
	fsmpb.CommandType_COMMAND_ARCHIVE_ELECTION: true,
}

// stamper has the register's head stamped by a trusted authority: every interval and after
// each milestone, on the leader only. It runs apart from the write path: an authority that is
// slow or down delays nothing but the next stamp; each failure is recorded in the register
// and counted, and the stamper asks again after the retry interval.
type stamper struct {
	n       *Node
	client  *tsa.Client
	trigger chan struct{}
	// lastSeq is the register entry this stamper's last token produced: stamping it again
	// would only stamp a stamp.
	lastSeq  uint64
	failures int
}

func newStamper(n *Node, authorities []tsa.Authority) *stamper {
	return &stamper{n: n, trigger: make(chan struct{}, 1),
		client: &tsa.Client{Authorities: authorities, Timeout: time.Duration(n.cfg.TimestampTimeout)}}
}

// observe is part of the FSM observer: a milestone applied asks for a stamp now.
func (s *stamper) observe(t fsmpb.CommandType, code fsmpb.ResponseCode) {
	if code == fsmpb.ResponseCode_RESPONSE_OK && stampAfter[t] {
		select {
		case s.trigger <- struct{}{}:
		default:
		}
	}
}

// run is the stamper's loop, one goroutine per node for the node's lifetime.
func (s *stamper) run() {
	defer s.n.wg.Done()
	timer := time.NewTimer(time.Duration(s.n.cfg.TimestampInterval))
	defer timer.Stop()
	for {
		select {
		case <-s.n.ctx.Done():
			return
		case <-s.trigger:
		case <-timer.C:
		}
		timer.Reset(time.Duration(s.n.cfg.TimestampInterval)) // shortened below after a failure
		if s.n.raft.State() == raft.Leader {
			s.n.recordBuildOnce(s.n.ctx)
			if len(s.client.Authorities) == 0 {
				continue
			}
			if err := s.stampHead(s.n.ctx); err != nil {
				timer.Reset(time.Duration(s.n.cfg.TimestampRetry))
			}
		}
	}
}

// stampHead asks the authorities for a token over the head and records it, or records why
// none was obtained.
func (s *stamper) stampHead(ctx context.Context) error {
	seq, head, _, err := s.n.fsm.RegisterHead()
	if err != nil || seq == 0 || seq == s.lastSeq {
		return err
	}
	stamped, err := s.client.Stamp(ctx, head[:])
	if err != nil {
		s.recordFailure(ctx, seq, err)
		return err
	}
	resp, _, err := s.n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_REGISTER_STAMP, &fsmpb.RegisterStamp{
		Seq: seq, Head: head[:], Authority: stamped.Authority, Token: stamped.Token})
	if err == nil {
		err = fsm.ResponseError(resp)
	}
	if err != nil {
		s.n.log.Warn("recording a timestamp failed", "entry", seq, "err", err)
		return err
	}
	s.n.auditor.metrics.stamped(true)
	if s.failures > 0 {
		s.n.log.Info("timestamps resumed", "failed_attempts", s.failures, "entry", seq)
	}
	s.failures = 0
	if seq, _, _, err := s.n.fsm.RegisterHead(); err == nil {
		s.lastSeq = seq
	}
	return nil
}

// recordFailure counts a failed stamp and records it in the register, so the gap shows. The
// first failure of a gap is an alert, mailed to the bureau and the organizers; the retries
// that follow are only recorded.
func (s *stamper) recordFailure(ctx context.Context, seq uint64, cause error) {
	s.failures++
	s.n.auditor.metrics.stamped(false)
	s.n.log.Warn("no timestamp authority stamped the register", "entry", seq, "attempt", s.failures, "err", cause)
	ev := &fsmpb.RecordEvent{Action: "timestamp", Object: fmt.Sprintf("register entry %d", seq), Outcome: "failed",
		Detail: boundText(fmt.Sprintf("attempt %d: %v; voting goes on, stamping is retried every %s",
			s.failures, cause, time.Duration(s.n.cfg.TimestampRetry)))}
	if s.failures == 1 {
		ev.Notice = fsmpb.Notice_NOTICE_ALERT
	}
	_, _, err := s.n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_RECORD_EVENT, ev)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.n.log.Warn("recording a timestamp failure failed", "err", err)
	}
}

// proposeOwn proposes a command this node makes on its own behalf.
func (n *Node) proposeOwn(ctx context.Context, t fsmpb.CommandType, payload proto.Message) (*fsmpb.Response, uint64, error) {
	cmd, err := fsm.NewCommand(t, payload)
	if err != nil {
		return nil, 0, err
	}
	cmd.Actor = n.selfActor()
	ctx, cancel := context.WithTimeout(ctx, 2*applyTimeout)
	defer cancel()
	return n.Propose(ctx, cmd)
}
