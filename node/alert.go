package node

import (
	"context"
	"fmt"
	"mime"
	"net/smtp"
	"strings"
	"time"
)

// alertSender delivers an integrity alert outside the replicated outbox: alerts normally
// travel as register entries the state machine mails to the bureau and the organizers, but a
// cluster that cannot commit (no quorum) cannot record them, and its operators must still
// hear of it. AlertMailConfig names that fallback relay.
type alertSender interface {
	SendAlert(ctx context.Context, subject, body string) error
}

// smtpSender mails alerts through the configured relay.
type smtpSender struct {
	cfg AlertMailConfig
}

// smtpTimeout bounds one delivery.
const smtpTimeout = 30 * time.Second

func (s smtpSender) SendAlert(ctx context.Context, subject, body string) error {
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(s.cfg.Server, nil, s.cfg.From, s.cfg.To, s.message(subject, body)) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("mail the alert through %s: %w", s.cfg.Server, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mail the alert through %s: %w", s.cfg.Server, ctx.Err())
	case <-time.After(smtpTimeout):
		return fmt.Errorf("mail the alert through %s: no answer within %v", s.cfg.Server, smtpTimeout)
	}
}

// message builds an RFC 5322 message; subject and body come from the node, never a caller.
func (s smtpSender) message(subject, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n", s.cfg.From,
		strings.Join(s.cfg.To, ", "), mime.QEncoding.Encode("utf-8", strings.NewReplacer("\r", " ", "\n", " ").Replace(subject)), time.Now().UTC().Format(time.RFC1123Z))
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return []byte(b.String())
}

// noSender is used when no fallback relay is configured: unrecorded alerts are only logged
// and counted.
type noSender struct{}

func (noSender) SendAlert(context.Context, string, string) error {
	return fmt.Errorf("no smtp server is configured for alerts")
}
