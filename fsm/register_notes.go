package fsm

import (
	"encoding/hex"
	"fmt"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Actions of the register that a handler names itself, with the detail only it knows (the
// fields a rectification changed, the reason of an unlock, the seal's digest). Casts are
// deliberately absent: the émargement is their record, and a detailed line per cast would be
// one more place where a time sits next to a voter.
const (
	JournalElectionCreated    = "create election"
	JournalElectionConfigured = "configure election"
	JournalScrutinPut         = "put scrutin"
	JournalListPut            = "put candidate list"
	JournalKeySet             = "set election key"
	JournalRollImported       = "import voters"
	JournalRollRectified      = "rectify voter"
	JournalSealed             = "seal election"
	JournalOpened             = "open election"
	JournalClosed             = "close election"
	JournalTallied            = "record tally"
	JournalArchived           = "archive election"
	JournalIdentifiersIssued  = "issue identifiers"
	JournalLoginFailed        = "login failed"
	JournalCodeFailed         = "code failed"
	JournalAccountLocked      = "lock account"
	JournalAccountUnlocked    = "unlock account"
	JournalSessionOpened      = "open session"
)

// NothingChanged is the detail of an accepted command that changed nothing: a repeated
// transition, a tick before the deadline.
const NothingChanged = "nothing changed"

// noting are the command types whose handlers note every change they make: accepted
// without a note, they changed nothing.
var noting = map[fsmpb.CommandType]bool{
	fsmpb.CommandType_COMMAND_CREATE_ELECTION: true, fsmpb.CommandType_COMMAND_CONFIGURE_ELECTION: true,
	fsmpb.CommandType_COMMAND_PUT_SCRUTIN: true, fsmpb.CommandType_COMMAND_PUT_CANDIDATE_LIST: true,
	fsmpb.CommandType_COMMAND_SET_ELECTION_KEY: true, fsmpb.CommandType_COMMAND_SEAL_ELECTION: true,
	fsmpb.CommandType_COMMAND_OPEN_ELECTION: true, fsmpb.CommandType_COMMAND_CLOSE_ELECTION: true,
	fsmpb.CommandType_COMMAND_TICK: true, fsmpb.CommandType_COMMAND_RECORD_TALLY: true,
	fsmpb.CommandType_COMMAND_ARCHIVE_ELECTION: true, fsmpb.CommandType_COMMAND_ISSUE_IDENTIFIERS: true,
	fsmpb.CommandType_COMMAND_UNLOCK_ACCOUNT: true,
}

// registerNote is what a handler tells the register about the command it applies.
type registerNote struct {
	action, object, detail string
}

// journal notes an action of the command being applied, for the register. The generic
// record step turns the notes into entries of the one hash-chained register: the first note
// names the command's own entry, each further one (a rectification per voter, a lock after a
// failure) an entry of its own with the same actor, time and raft index. subject, when not
// nil, is the voter key the action concerns (a keyed hash: it names no one).
func (s *applyState) journal(_ *fsmpb.Command, action string, subject []byte, format string, args ...any) error {
	n := registerNote{action: action, detail: clip(fmt.Sprintf(format, args...))}
	if subject != nil {
		n.object = "voter account " + hex.EncodeToString(subject[:min(len(subject), 8)])
	}
	s.notes = append(s.notes, n)
	return nil
}

// notedEntries turns the notes of the command into entries shaped like base (the command's
// own entry as describe made it); without notes, base alone. A refused command keeps no
// note: a refusal changes nothing but the register's line saying so.
func (s *applyState) notedEntries(t fsmpb.CommandType, base *audit.Entry) []*audit.Entry {
	notes := s.notes
	s.notes = nil
	if len(notes) == 0 || base.Outcome != audit.OutcomeOK {
		if len(notes) == 0 && base.Outcome == audit.OutcomeOK && noting[t] {
			base.Detail = NothingChanged
		}
		return []*audit.Entry{base}
	}
	out := make([]*audit.Entry, 0, len(notes))
	for _, n := range notes {
		e := *base
		e.Action, e.Detail = n.action, n.detail
		if n.object != "" {
			e.Object = n.object
		}
		out = append(out, &e)
	}
	return out
}
