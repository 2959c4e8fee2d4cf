package fsm

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// countBucket reads the number of records of a bucket.
func (h *harness) countBucket(b []byte) int {
	h.t.Helper()
	n := 0
	if err := h.f.view(func(tx *bolt.Tx) error { n = tx.Bucket(b).Stats().KeyN; return nil }); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// applyWithIP applies a command as if it came from address ip.
func (h *harness) applyWithIP(typ fsmpb.CommandType, payload proto.Message, ip string) {
	h.t.Helper()
	l := h.entry(typ, payload)
	c, err := Decode(l.Data)
	if err != nil {
		h.t.Fatal(err)
	}
	c.Actor.Ip = ip
	l.Data = encode(h.t, c)
	if err := ResponseError(h.applyLog(l)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) due(at time.Time) bool {
	h.t.Helper()
	due, err := h.f.RetentionDue(at)
	if err != nil {
		h.t.Fatal(err)
	}
	return due
}

// TestRetentionSweep walks an election through every retention period with ticks stamped
// later and later, and checks what each one removed, and that the register still verifies
// once the addresses are gone.
func TestRetentionSweep(t *testing.T) {
	h := newHarness(t)
	h.openLegal()
	h.as(ActorOrganizer, func() { h.applyWithIP(typeIssue, &fsmpb.IssueIdentifiers{}, "192.0.2.10") })
	h.login("alice", "+33600000001")
	// bob's login stays pending: he never asks for his code.
	h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: h.identifierOf("bob"), SecretOk: true, ChallengeHash: tokenHash("bob pending")})
	if got := h.countBucket(bucketSessions); got != 2 {
		t.Fatalf("%d sessions before the sweep, want 2", got)
	}
	start := h.now()
	if h.due(start) {
		t.Fatal("a sweep is due right after login")
	}
	h.refusedLeavesNoTraceOK(typeTick) // nothing expired: a tick changes nothing

	// 31 minutes later: the pending login is gone; the ended session stays for retries.
	h.setClock(start.Add(31 * time.Minute))
	if !h.due(start.Add(31 * time.Minute)) {
		t.Fatal("no sweep due after 31 minutes")
	}
	h.mustApply(typeTick, &fsmpb.Tick{})
	if got := h.countBucket(bucketSessions); got != 1 {
		t.Fatalf("%d sessions after 31 minutes, want 1", got)
	}
	if h.countBucket(bucketOutbox) == 0 {
		t.Fatal("undelivered messages purged before their day")
	}

	// A day later: undelivered messages go.
	h.setClock(start.Add(25 * time.Hour))
	h.mustApply(typeTick, &fsmpb.Tick{})
	if got := h.countBucket(bucketOutbox); got != 0 {
		t.Fatalf("%d outbox messages after a day, want 0", got)
	}
	if c := h.counts(); c.OutboxPending != 0 {
		t.Fatalf("outbox pending counter %d after the purge", c.OutboxPending)
	}

	// The close purges every session; 7 days later identifiers and accounts go.
	h.setClock(closesAt)
	h.mustApply(typeTick, &fsmpb.Tick{})
	if h.countBucket(bucketLogins) == 0 || h.countBucket(bucketAccounts) == 0 {
		t.Fatal("credentials purged at the close")
	}
	if got := h.countBucket(bucketSessions); got != 0 {
		t.Fatalf("%d sessions after the close, want 0", got)
	}
	h.setClock(closesAt.Add(7*24*time.Hour + time.Minute))
	h.mustApply(typeTick, &fsmpb.Tick{})
	if h.countBucket(bucketLogins) != 0 || h.countBucket(bucketAccounts) != 0 {
		t.Fatal("credentials kept past 7 days after the close")
	}
	if h.countBucket(bucketVoters) != 3 {
		t.Fatal("the roll was purged: it lives until the destruction")
	}

	// 180 days after the issue: its address is erased, the chain still verifies.
	withIP := func() int {
		n := 0
		err := h.f.RegisterEntries(1, func(e *audit.Entry) error {
			if e.Connection != nil {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if withIP() != 1 {
		t.Fatalf("%d register entries keep an address, want 1", withIP())
	}
	h.setClock(start.Add(181 * 24 * time.Hour))
	h.mustApply(typeTick, &fsmpb.Tick{})
	if withIP() != 0 {
		t.Fatal("the address outlived its 180 days")
	}
	rep, err := h.f.VerifyRegister(nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ErasedConnections != 1 {
		t.Fatalf("register report: %d connections erased, want 1", rep.ErasedConnections)
	}
	if h.due(start.Add(182 * 24 * time.Hour)) {
		t.Fatal("a sweep is still due after everything expired was removed")
	}
	// The sweeps are in the register, and the state reopens (counters match the buckets).
	sweeps := 0
	for _, e := range h.entries() {
		if e.Action == JournalRetention {
			sweeps++
		}
	}
	if sweeps == 0 {
		t.Fatal("no retention sweep in the register")
	}
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open(h.path, newSealer(t, 1), nil, true); err != nil {
		t.Fatal(err)
	}
}
