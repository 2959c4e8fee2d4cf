package fsm

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// sealedPhases are those in which a change of the system is mailed to the bureau and the
// organizers: the election's configuration is frozen, so any change around it must be seen.
var sealedPhases = []int32{PhaseSealed, PhaseOpen, PhaseClosed}

// noticeOf says whom the entries of a command are mailed to: a recorded event carries its
// own notice. A refused command tells nobody: a refusal changes nothing but the register (an
// attempt to change a sealed election is refused by the state machine itself).
func noticeOf(c *fsmpb.Command, resp *fsmpb.Response) fsmpb.Notice {
	switch {
	case c == nil:
		return fsmpb.Notice_NOTICE_NONE
	case c.Type == fsmpb.CommandType_COMMAND_RECORD_EVENT && resp.GetCode() == fsmpb.ResponseCode_RESPONSE_OK:
		p := &fsmpb.RecordEvent{}
		if err := proto.Unmarshal(c.Payload, p); err != nil {
			return fsmpb.Notice_NOTICE_NONE
		}
		return p.Notice
	}
	return fsmpb.Notice_NOTICE_NONE
}

// notice mails a register entry to the election's bureau members and organizers through
// the outbox: a sealed change only while the election is sealed, open or closed; an alert
// in every phase. Without an election, or nobody to tell, it does nothing.
func (s *applyState) notice(kind fsmpb.Notice, e *audit.Entry) error {
	el := s.election
	if el == nil || kind == fsmpb.Notice_NOTICE_NONE {
		return nil
	}
	if kind == fsmpb.Notice_NOTICE_SEALED_CHANGE && !slices.Contains(sealedPhases, el.Phase) {
		return nil
	}
	subject, body := noticeText(kind, el, e)
	for _, to := range noticeRecipients(el.GetConfig()) {
		if err := s.enqueueAt(e.Time, ChannelEmail, to, subject, body); err != nil {
			return err
		}
	}
	return nil
}

// noticeRecipients lists the bureau members' and organizers' emails, each once, in order.
func noticeRecipients(cfg *fsmpb.ElectionConfig) []string {
	var out []string
	add := func(email string) {
		if email != "" && !slices.Contains(out, email) {
			out = append(out, email)
		}
	}
	for _, m := range cfg.GetBureau() {
		add(m.Email)
	}
	for _, email := range cfg.GetOrganizerEmails() {
		add(email)
	}
	return out
}

// noticeText writes the email of an entry. The subject keeps to ASCII where it can (the
// election id, the action and object, not the election's name), so it reads the same in
// every mail client.
func noticeText(kind fsmpb.Notice, el *fsmpb.ElectionState, e *audit.Entry) (subject, body string) {
	what, why := "Changement", "Un changement du système a été enregistré pendant que le vote est "+phaseFrench(el.Phase)
	if kind == fsmpb.Notice_NOTICE_ALERT {
		what, why = "Alerte", "Une alerte a été enregistrée"
	}
	subject = clip(fmt.Sprintf("[urne] %s, vote %s : %s, %s", what, el.ElectionId, e.Action, e.Object))
	var b strings.Builder
	fmt.Fprintf(&b, "Bonjour,\n\n%s, au registre d'activité du vote « %s » (%s, phase %s).\n\n", why, el.Name, el.ElectionId, phaseName(el.Phase))
	fmt.Fprintf(&b, "Action   : %s\nObjet    : %s\nRésultat : %s\nAuteur   : %s\nDate     : %s\nEntrée   : n° %d du registre\n",
		e.Action, e.Object, e.Outcome, e.Actor, stamp(e.Time), e.Seq)
	if e.Detail != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.ReplaceAll(e.Detail, " | ", "\n"))
	}
	return subject, b.String()
}

func phaseFrench(p int32) string {
	switch p {
	case PhaseSealed:
		return "scellé"
	case PhaseOpen:
		return "ouvert"
	case PhaseClosed:
		return "clos"
	}
	return phaseName(p)
}
