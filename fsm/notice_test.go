package fsm

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

const typeEvent = fsmpb.CommandType_COMMAND_RECORD_EVENT

// noticesTo returns the subjects of the outbox messages to an address.
func (h *harness) noticesTo(to string) []string {
	h.t.Helper()
	var out []string
	for _, m := range h.outbox() {
		if m.To == to && strings.HasPrefix(m.Subject, "[urne]") {
			out = append(out, m.Subject)
		}
	}
	return out
}

// TestSealedChangesAreMailed: a change recorded with a sealed-change notice is mailed to
// every bureau member and organizer while the election is sealed, open or closed, and to
// nobody before the seal or after the tally.
func TestSealedChangesAreMailed(t *testing.T) {
	h := newHarness(t)
	h.draftLegal()
	change := &fsmpb.RecordEvent{Action: "key rotation", Object: "keyring of node dc1-a", Outcome: "ok",
		Detail: "new primary key 3", Notice: fsmpb.Notice_NOTICE_SEALED_CHANGE}
	h.mustApply(typeEvent, change)
	if got := h.noticesTo("president@example.org"); len(got) != 0 {
		t.Fatalf("a change of a draft was mailed: %v", got)
	}
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	h.mustApply(typeEvent, change)
	for _, to := range []string{"president@example.org", "secretary@example.org", "organizers@example.org"} {
		got := h.noticesTo(to)
		if len(got) != 1 || got[0] != "[urne] Changement, vote cse-2026 : key rotation, keyring of node dc1-a" {
			t.Fatalf("notices to %s: %v", to, got)
		}
	}
	m := h.lastMessageTo("organizers@example.org")
	if !strings.Contains(m.Body, "new primary key 3") || !strings.Contains(m.Body, "pendant que le vote est scellé") || m.Channel != ChannelEmail {
		t.Fatalf("notice %v", m)
	}

	// A membership change (a raft configuration entry) is a change too.
	h.last++
	conf := raft.Configuration{Servers: []raft.Server{{ID: "dc1-a", Suffrage: raft.Voter}}}
	h.f.Apply(&raft.Log{Index: h.last, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(conf), AppendedAt: time.Now()})
	if got := h.noticesTo("president@example.org"); len(got) != 2 || !strings.Contains(got[1], "membership change") {
		t.Fatalf("membership change notices: %v", got)
	}
	// An event without a notice tells nobody.
	h.mustApply(typeEvent, &fsmpb.RecordEvent{Action: "export", Object: "activity register", Outcome: "ok"})
	if got := h.noticesTo("president@example.org"); len(got) != 2 {
		t.Fatalf("an event without notice was mailed: %v", got)
	}
}

// TestAlertsAreMailedInEveryPhase: an alert goes to the bureau and the organizers even
// before the seal.
func TestAlertsAreMailedInEveryPhase(t *testing.T) {
	h := newHarness(t)
	h.draftLegal()
	h.mustApply(typeEvent, &fsmpb.RecordEvent{Action: "integrity check", Object: "node dc1-b", Outcome: "failed",
		Detail: "FAILED ballot_box: the ballot stored under fingerprint 00ab | OK register: 4 entries", Notice: fsmpb.Notice_NOTICE_ALERT})
	m := h.lastMessageTo("secretary@example.org")
	if m.Subject != "[urne] Alerte, vote cse-2026 : integrity check, node dc1-b" || !strings.Contains(m.Body, "FAILED ballot_box: the ballot stored under fingerprint 00ab\nOK register") {
		t.Fatalf("alert %v", m)
	}
	if len(h.noticesTo("organizers@example.org")) != 1 {
		t.Fatal("the organizers were not told")
	}
}
