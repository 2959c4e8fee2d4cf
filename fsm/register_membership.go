package fsm

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// recordMembership records a change of the raft configuration (a server added, promoted or
// removed) in the register. A configuration entry carries no leader stamp, and its append time
// is each node's own for the bootstrap entry, so the entry takes the time of the entry before
// it: every replica records the same bytes.
func (s *applyState) recordMembership(l *raft.Log) error {
	if l.Type != raft.LogConfiguration {
		return nil
	}
	head, err := s.registerHead()
	if err != nil {
		return err
	}
	e := &audit.Entry{Actor: actorSystem, Action: "membership change", Object: "raft configuration",
		Outcome: audit.OutcomeOK, RaftIndex: l.Index, Detail: describeConfiguration(l.Data)}
	if head.seq > 0 {
		prev, err := readRegisterEntry(s.tx, s.sealer, head.seq)
		if err != nil {
			return err
		}
		e.Time = prev.Time
	}
	if err := s.appendEntry(e); err != nil {
		return err
	}
	return s.notice(fsmpb.Notice_NOTICE_SEALED_CHANGE, e)
}

// describeConfiguration lists the servers by suffrage; an undecodable entry is said so, since
// raft's decoder panics on bytes it cannot read.
func describeConfiguration(data []byte) (detail string) {
	defer func() {
		if recover() != nil {
			detail = "undecodable configuration"
		}
	}()
	c := raft.DecodeConfiguration(data)
	bySuffrage := map[string][]string{}
	for _, srv := range c.Servers {
		name := strings.ToLower(srv.Suffrage.String())
		bySuffrage[name] = append(bySuffrage[name], string(srv.ID))
	}
	var parts []string
	for _, name := range []string{"voter", "nonvoter", "staging"} {
		ids := bySuffrage[name]
		sort.Strings(ids)
		if len(ids) > 0 {
			parts = append(parts, fmt.Sprintf("%ss: %s", name, strings.Join(ids, ", ")))
		}
	}
	return clip(strings.Join(parts, "; "))
}
