package fsm

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Retention periods (docs/RETENTION.md). Every kind of record has one; those not listed here
// live until the certified destruction (destruction.go).
const (
	// MaxSessionTimeout is the seed's 30 minutes of inactivity: a configured session timeout
	// above it is capped when sessions are purged.
	MaxSessionTimeout = 30 * time.Minute
	// OutboxRetention: a message still undelivered a day after it was queued is dropped (its
	// code or notice is stale); the seed's 24 hours for data never validated.
	OutboxRetention = 24 * time.Hour
	// CredentialRetention: login identifiers and the accounts' authentication state (failures,
	// lock, phone) are destroyed 7 days after the vote closed, as the seed's identifiers.
	CredentialRetention = 7 * 24 * time.Hour
	// maxSweepRecords bounds the records one sweep removes or rewrites, so that one tick
	// stays a short apply; the next tick goes on.
	maxSweepRecords = 10000
)

// keyRetentionCursor is the number of the last register entry whose connection details the
// sweep has dealt with (erased, or had none): the walk resumes after it.
var keyRetentionCursor = []byte("retention/register")

// JournalRetention is the register action of a sweep that removed something.
const JournalRetention = "purge expired records"

// sweep is what one pass of the retention rules found (and, when applying, removed).
type sweep struct {
	pending, outbox, logins, accounts, connections int
	// cursor is where the register walk stopped; advanced says it moved by a whole window of
	// entries without details (casts), which is worth a tick of its own.
	cursor   uint64
	advanced bool
}

func (w sweep) total() int {
	n := w.pending + w.outbox + w.logins + w.accounts + w.connections
	if w.advanced {
		n++
	}
	return n
}

func (w sweep) String() string {
	return fmt.Sprintf("%d pending logins, %d undelivered messages, %d login identifiers, %d accounts, %d connection details in the register",
		w.pending, w.outbox, w.logins, w.accounts, w.connections)
}

// sweepRetention applies the retention rules at the tick's stamped time: the same bytes give
// the same purge on every replica (invariant 1).
func (s *applyState) sweepRetention(c *fsmpb.Command) error {
	if s.election == nil || c.StampedAtUnixNano <= 0 {
		return nil
	}
	w, err := findExpired(s.tx, s.sealer, s.election, c.StampedAtUnixNano, true)
	if err != nil || w.total() == 0 {
		return err
	}
	if w.outbox > 0 {
		s.counters.OutboxPending -= min(s.counters.OutboxPending, uint64(w.outbox))
		s.countersDirty = true
	}
	if w.cursor > 0 {
		if err := putSealed(s.tx, s.sealer, bucketMeta, keyRetentionCursor, binary.BigEndian.AppendUint64(nil, w.cursor)); err != nil {
			return err
		}
	}
	if w.advanced && w.total() == 1 {
		return nil // only the register walk moved on: nothing to journal
	}
	return s.journal(c, JournalRetention, nil, "retention: %s", w)
}

// RetentionDue reports whether a sweep at now would remove anything: the leader proposes a
// TICK when it does.
func (f *FSM) RetentionDue(now time.Time) (bool, error) {
	var due bool
	err := f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e == nil {
			return err
		}
		w, err := findExpired(tx, f.sealer, e, now.UnixNano(), false)
		due = w.total() > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("fsm: retention: %w", err)
	}
	return due, nil
}

// findExpired walks the records that have a retention period and counts (remove: deletes)
// those past it at now.
func findExpired(tx *bolt.Tx, s Sealer, e *fsmpb.ElectionState, now int64, remove bool) (sweep, error) {
	var w sweep
	steps := []func() error{
		func() error { return expireSessions(tx, s, e, now, remove, &w) },
		func() error { return expireOutbox(tx, s, now, remove, &w) },
		func() error { return expireCredentials(tx, e, now, remove, &w) },
		func() error { return expireConnections(tx, s, now, remove, &w) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return w, err
		}
	}
	return w, nil
}

// deleteKeys removes keys gathered during a walk (bbolt forbids deleting under a cursor).
func deleteKeys(tx *bolt.Tx, bucket []byte, keys [][]byte) error {
	for _, k := range keys {
		if err := tx.Bucket(bucket).Delete(k); err != nil {
			return storageErr("retention: delete from %s: %w", bucket, err)
		}
	}
	return nil
}

// expireSessions: a pending login (with its one-time code) older than the session timeout (at
// most 30 minutes). Voting sessions end after their inactivity timeout, checked at each use,
// and the close purges them all (election.go).
func expireSessions(tx *bolt.Tx, s Sealer, e *fsmpb.ElectionState, now int64, remove bool, w *sweep) error {
	limit := min(sessionTimeout(e), int64(MaxSessionTimeout))
	var gone [][]byte
	err := tx.Bucket(bucketSessions).ForEach(func(k, _ []byte) error {
		if len(gone) >= maxSweepRecords {
			return nil
		}
		ss := &fsmpb.Session{}
		if _, err := getMessage(tx, s, bucketSessions, k, ss); err != nil {
			return err
		}
		if ss.Active || now-ss.CreatedAtUnixNano <= limit {
			return nil
		}
		w.pending++
		gone = append(gone, append([]byte(nil), k...))
		return nil
	})
	if err != nil || !remove {
		return err
	}
	return deleteKeys(tx, bucketSessions, gone)
}

// expireOutbox drops messages still undelivered a day after they were queued.
func expireOutbox(tx *bolt.Tx, s Sealer, now int64, remove bool, w *sweep) error {
	var gone [][]byte
	cur := tx.Bucket(bucketOutbox).Cursor()
	for k, _ := cur.First(); k != nil && len(gone) < maxSweepRecords; k, _ = cur.Next() {
		m := &fsmpb.OutboxMessage{}
		if _, err := getMessage(tx, s, bucketOutbox, k, m); err != nil {
			return err
		}
		if now-m.EnqueuedAtUnixNano <= int64(OutboxRetention) {
			break // queued in order: the rest is younger
		}
		gone = append(gone, append([]byte(nil), k...))
	}
	w.outbox = len(gone)
	if !remove {
		return nil
	}
	return deleteKeys(tx, bucketOutbox, gone)
}

// expireCredentials drops the login identifiers and the accounts 7 days after the vote closed:
// nobody may log in any more, and the phone numbers go with the accounts.
func expireCredentials(tx *bolt.Tx, e *fsmpb.ElectionState, now int64, remove bool, w *sweep) error {
	if e.ClosedAtUnixNano == 0 || now-e.ClosedAtUnixNano <= int64(CredentialRetention) {
		return nil
	}
	for _, b := range []struct {
		bucket []byte
		count  *int
	}{{bucketLogins, &w.logins}, {bucketAccounts, &w.accounts}} {
		var gone [][]byte
		cur := tx.Bucket(b.bucket).Cursor()
		for k, _ := cur.First(); k != nil && len(gone) < maxSweepRecords; k, _ = cur.Next() {
			gone = append(gone, append([]byte(nil), k...))
		}
		*b.count = len(gone)
		if remove {
			if err := deleteKeys(tx, b.bucket, gone); err != nil {
				return err
			}
		}
	}
	return nil
}

// expireConnections erases the connection details (IP address, time) of register entries
// past their retention class (7 or 180 days). The entry's hash covers only their digest, so
// the chain still verifies. The walk goes in entry order from the cursor and stops at the
// first details still kept: entries are in time order.
func expireConnections(tx *bolt.Tx, s Sealer, now int64, remove bool, w *sweep) error {
	cursor, err := readRetentionCursor(tx, s)
	if err != nil {
		return err
	}
	at := time.Unix(0, now)
	type rewrite struct {
		key   []byte
		entry *audit.Entry
	}
	var out []rewrite
	scanned := 0
	c := tx.Bucket(bucketRegister).Cursor()
	for k, v := c.Seek(registerKey(cursor + 1)); k != nil && scanned < maxSweepRecords; k, v = c.Next() {
		scanned++
		e, err := openRegisterValue(s, k, v)
		if err != nil {
			return err
		}
		if e.Connection != nil && !e.Connection.ExpiredAt(at) {
			break
		}
		if e.Connection != nil {
			e.EraseConnection()
			out = append(out, rewrite{append([]byte(nil), k...), e})
			w.connections++
		}
		w.cursor = e.Seq
	}
	w.advanced = scanned == maxSweepRecords && w.cursor > cursor
	if w.cursor == cursor {
		w.cursor = 0 // nothing to persist
	}
	if !remove || w.connections == 0 {
		return nil
	}
	for _, r := range out {
		b, err := r.entry.MarshalBinary()
		if err != nil {
			return storageErr("retention: encode register entry %d: %w", r.entry.Seq, err)
		}
		if err := putSealed(tx, s, bucketRegister, r.key, b); err != nil {
			return err
		}
	}
	return nil
}

func readRetentionCursor(tx *bolt.Tx, s Sealer) (uint64, error) {
	plain, ok, err := getOpened(tx, s, bucketMeta, keyRetentionCursor)
	if !ok || err != nil {
		return 0, err
	}
	if len(plain) != 8 {
		return 0, storageErr("retention cursor of %d bytes, want 8", len(plain))
	}
	return binary.BigEndian.Uint64(plain), nil
}
