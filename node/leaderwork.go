package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Pace of the leader's background work.
const (
	deadlineInterval = time.Second
	// retentionEvery is how many deadline turns pass between two retention checks.
	retentionEvery   = 30
	outboxInterval   = 250 * time.Millisecond
	outboxBatch      = 32
	deliveryTimeout  = 20 * time.Second
	maxDeliveryDelay = time.Minute
	maxDetailLen     = fsm.MaxTextSize
)

// now is the node's clock: the time the leader stamps on commands.
func (n *Node) now() time.Time { return n.clock.Now() }

// leading reports whether this node leads and has applied everything of earlier terms, so
// that what its state machine says is current.
func (n *Node) leading() bool {
	return n.raft.State() == raft.Leader && n.leader.readyTerm.Load() == n.currentTerm()
}

// deadlineLoop lets the election close on time with no request: every second the leader
// compares its clock with the closing time its state machine holds and, once it has passed,
// proposes a TICK stamped with that clock. Every 30 s it also proposes one when a retention
// period has run out. The state machine decides on the stamped time
// alone (invariant 1); a tick that finds nothing due changes nothing.
func (n *Node) deadlineLoop() {
	defer n.wg.Done()
	t := time.NewTicker(deadlineInterval)
	defer t.Stop()
	for turn := 1; ; turn++ {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if n.leading() && (n.deadlinePassed() || turn%retentionEvery == 0 && n.retentionDue()) {
				n.proposeInternal(fsmpb.CommandType_COMMAND_TICK, &fsmpb.Tick{})
			}
		}
	}
}

// retentionDue asks the state machine whether a tick stamped now would purge something
// (fsm/retention.go): the same tick then purges it on every replica.
func (n *Node) retentionDue() bool {
	due, err := n.fsm.RetentionDue(n.now())
	if err != nil {
		n.log.Warn("retention check", "err", err)
	}
	return due
}

func (n *Node) deadlinePassed() bool {
	e := n.fsm.LatestElection()
	if e.GetPhase() != fsm.PhaseOpen {
		return false
	}
	closes := e.GetConfig().GetClosesAtUnixNano()
	return closes != 0 && n.now().UnixNano() >= closes
}

// proposeInternal proposes a command of the node's own (actor "node") and logs a failure:
// the loop that called it tries again on its next turn.
func (n *Node) proposeInternal(t fsmpb.CommandType, payload proto.Message) {
	cmd, err := fsm.NewCommand(t, payload)
	if err != nil {
		n.log.Error("build internal command", "type", t, "err", err)
		return
	}
	cmd.Actor = &fsmpb.Actor{Principal: fsm.ActorNode}
	ctx, cancel := context.WithTimeout(n.ctx, applyTimeout)
	defer cancel()
	resp, _, err := n.Propose(ctx, cmd)
	if err == nil {
		err = fsm.ResponseError(resp)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		n.log.Warn("internal command failed; will retry", "type", t, "err", err)
	}
}

// outboxLoop drains the replicated outbox on the leader: each message goes to the primary
// provider of its channel, then the backup, and the outcome is committed with OUTBOX_DONE.
// Delivery is at least once: a leader that fails between sending and committing leaves the
// message for the next leader to send again.
func (n *Node) outboxLoop() {
	defer n.wg.Done()
	t := time.NewTicker(outboxInterval)
	defer t.Stop()
	retryAt := map[uint64]time.Time{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if n.leading() {
				n.drainOutbox(retryAt)
			}
		}
	}
}

// drainOutbox sends what the outbox holds. An empty outbox is known without a read, which
// would commit the applied entries at every turn.
func (n *Node) drainOutbox(retryAt map[uint64]time.Time) {
	if n.fsm.OutboxPending() == 0 {
		return
	}
	msgs, err := n.fsm.Outbox(outboxBatch)
	if err != nil {
		n.log.Warn("read outbox", "err", err)
		return
	}
	now := time.Now()
	for _, m := range msgs {
		if at, wait := retryAt[m.Seq]; wait && now.Before(at) {
			continue
		}
		if n.ctx.Err() != nil || !n.leading() {
			return
		}
		provider, err := n.deliver(m)
		done := &fsmpb.OutboxDone{Seq: m.Seq, Delivered: err == nil, Detail: cleanDetail(provider)}
		if err != nil {
			done.Detail = cleanDetail(err.Error())
			retryAt[m.Seq] = now.Add(deliveryBackoff(m.Attempts))
			n.metrics.deliveries.WithLabelValues(m.Channel, "failed").Inc()
			n.log.Warn("delivery failed on every provider; will retry", "seq", m.Seq, "channel", m.Channel, "attempts", m.Attempts+1, "err", err)
		} else {
			delete(retryAt, m.Seq)
			n.metrics.deliveries.WithLabelValues(m.Channel, "delivered").Inc()
		}
		n.proposeInternal(fsmpb.CommandType_COMMAND_OUTBOX_DONE, done)
	}
}

func (n *Node) deliver(m *fsmpb.OutboxMessage) (string, error) {
	ctx, cancel := context.WithTimeout(n.ctx, deliveryTimeout)
	defer cancel()
	switch m.Channel {
	case fsm.ChannelEmail:
		return n.delivery.sendEmail(ctx, m.To, m.Subject, m.Body)
	case fsm.ChannelSMS:
		return n.delivery.sendSMS(ctx, m.To, m.Body)
	}
	return "", fmt.Errorf("unknown channel %q", m.Channel)
}

// deliveryBackoff doubles from one second up to a minute with the attempts made.
func deliveryBackoff(attempts uint32) time.Duration {
	d := time.Second << min(attempts, 6)
	return min(d, maxDeliveryDelay)
}

// cleanDetail makes a provider's answer fit a command: one line, within the text bound, cut
// on a rune boundary.
func cleanDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= maxDetailLen {
		return s
	}
	cut := maxDetailLen
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}

// loadCertPool reads PEM certificates to verify a provider's certificate with.
func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provider CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("provider CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
