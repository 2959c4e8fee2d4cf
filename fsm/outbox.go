package fsm

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Channels of the outbox.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
)

// enqueue appends a message to the replicated outbox. The leader delivers it and records the
// outcome with OUTBOX_DONE, so a message survives a failover: a new leader sends what the old
// one had not confirmed (at least once).
func (s *applyState) enqueue(c *fsmpb.Command, channel, to, subject, body string) error {
	return s.enqueueAt(c.StampedAtUnixNano, channel, to, subject, body)
}

// enqueueAt is enqueue for a message that no command's stamp dates (a membership change).
func (s *applyState) enqueueAt(at int64, channel, to, subject, body string) error {
	m := &fsmpb.OutboxMessage{Seq: s.counters.OutboxNext, Channel: channel, To: to, Subject: subject, Body: body,
		EnqueuedAtUnixNano: at}
	if err := putMessage(s.tx, s.sealer, bucketOutbox, seqKey(m.Seq), m); err != nil {
		return err
	}
	s.counters.OutboxNext++
	s.counters.OutboxPending++
	s.countersDirty = true
	return nil
}

// notifyBureau tells every bureau member with an email that the election was sealed.
func (s *applyState) notifyBureau(c *fsmpb.Command, e *fsmpb.ElectionState) error {
	for _, m := range e.GetConfig().GetBureau() {
		if m.Email == "" {
			continue
		}
		body := fmt.Sprintf("Bonjour %s,\n\nLe vote « %s » a été scellé le %s.\nEmpreinte du scellement : %x\nEmpreinte du logiciel : %x\n",
			m.Name, e.Name, stamp(e.Seal.SealedAtUnixNano), e.Seal.Digest, e.Seal.BuildDigest)
		if err := s.enqueue(c, ChannelEmail, m.Email, "Scellement du vote : "+e.Name, body); err != nil {
			return err
		}
	}
	return nil
}

// applyOutboxDone records a delivery: a delivered message leaves the outbox, a failed one
// stays with its attempt counted. A message already gone is a repeat and answers OK.
func applyOutboxDone(s *applyState, _ *fsmpb.Command, p *fsmpb.OutboxDone) (*fsmpb.Response, error) {
	key := seqKey(p.Seq)
	m := &fsmpb.OutboxMessage{}
	found, err := getMessage(s.tx, s.sealer, bucketOutbox, key, m)
	if err != nil || !found {
		return &fsmpb.Response{}, err
	}
	if !p.Delivered {
		m.Attempts++
		m.LastError = p.Detail
		return &fsmpb.Response{}, putMessage(s.tx, s.sealer, bucketOutbox, key, m)
	}
	if err := s.tx.Bucket(bucketOutbox).Delete(key); err != nil {
		return nil, storageErr("delete outbox message: %w", err)
	}
	s.counters.OutboxPending--
	s.countersDirty = true
	return &fsmpb.Response{}, nil
}

// Outbox returns up to limit messages waiting for delivery, oldest first.
func (f *FSM) Outbox(limit int) ([]*fsmpb.OutboxMessage, error) {
	var out []*fsmpb.OutboxMessage
	err := f.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := cur.First(); k != nil && len(out) < limit; k, _ = cur.Next() {
			m := &fsmpb.OutboxMessage{}
			if _, err := getMessage(tx, f.sealer, bucketOutbox, k, m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: read outbox: %w", err)
	}
	return out, nil
}
