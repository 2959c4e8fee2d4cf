package fsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Kinds of journal records: every state change of the lifecycle, the roll and the accounts.
// Casts are deliberately absent: the émargement is their record, and a journal line per cast
// would be one more place where a time sits next to a voter.
const (
	JournalElectionCreated    = "election.created"
	JournalElectionConfigured = "election.configured"
	JournalScrutinPut         = "scrutin.put"
	JournalListPut            = "list.put"
	JournalKeySet             = "election-key.set"
	JournalRollImported       = "roll.imported"
	JournalRollRectified      = "roll.rectified"
	JournalSealed             = "election.sealed"
	JournalOpened             = "election.opened"
	JournalClosed             = "election.closed"
	JournalTallied            = "election.tallied"
	JournalArchived           = "election.archived"
	JournalIdentifiersIssued  = "identifiers.issued"
	JournalLoginFailed        = "login.failed"
	JournalCodeFailed         = "code.failed"
	JournalAccountLocked      = "account.locked"
	JournalAccountUnlocked    = "account.unlocked"
	JournalSessionOpened      = "session.opened"
)

// journal appends a record chained to the previous one: each record carries the hash of the
// one before, and the counters keep the hash of the last, so a record removed or changed
// breaks the chain (VerifyJournal).
func (s *applyState) journal(c *fsmpb.Command, kind string, subject []byte, format string, args ...any) error {
	rec := &fsmpb.JournalRecord{
		Seq:        s.counters.JournalNext,
		AtUnixNano: c.StampedAtUnixNano,
		Kind:       kind,
		Actor:      c.GetActor().GetPrincipal(),
		Subject:    subject,
		Detail:     fmt.Sprintf(format, args...),
		Prev:       s.counters.JournalHead,
	}
	plain, err := marshalOptions.Marshal(rec)
	if err != nil {
		return storageErr("encode journal record: %w", err)
	}
	if err := putSealed(s.tx, s.sealer, bucketJournal, seqKey(rec.Seq), plain); err != nil {
		return err
	}
	head := sha256.Sum256(plain)
	s.counters.JournalNext++
	s.counters.JournalHead = head[:]
	s.countersDirty = true
	return nil
}

// ForEachJournal calls fn with every journal record in order, in one read transaction.
func (f *FSM) ForEachJournal(fn func(*fsmpb.JournalRecord) error) error {
	return f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEach(func(k, _ []byte) error {
			rec := &fsmpb.JournalRecord{}
			if _, err := getMessage(tx, f.sealer, bucketJournal, k, rec); err != nil {
				return err
			}
			return fn(rec)
		})
	})
}

// VerifyJournal walks the chain and returns the number of records and the head hash. A gap,
// a record out of place or a hash that does not follow is ErrCorrupt.
func (f *FSM) VerifyJournal() (uint64, []byte, error) {
	var count uint64
	var head []byte
	err := f.view(func(tx *bolt.Tx) error {
		counters, err := readCounters(tx, f.sealer)
		if err != nil {
			return err
		}
		count, head, err = walkJournal(tx, f.sealer)
		if err != nil {
			return err
		}
		if count != counters.JournalNext || !bytes.Equal(head, counters.JournalHead) {
			return fmt.Errorf("%w: the journal holds %d records ending in %x, the counters say %d ending in %x",
				ErrCorrupt, count, head, counters.JournalNext, counters.JournalHead)
		}
		return nil
	})
	return count, head, err
}

func walkJournal(tx *bolt.Tx, s Sealer) (uint64, []byte, error) {
	var count uint64
	var head []byte
	err := tx.Bucket(bucketJournal).ForEach(func(k, _ []byte) error {
		plain, _, err := getOpened(tx, s, bucketJournal, k)
		if err != nil {
			return err
		}
		rec := &fsmpb.JournalRecord{}
		if err := proto.Unmarshal(plain, rec); err != nil {
			return err
		}
		if rec.Seq != count || !bytes.Equal(k, seqKey(count)) || !bytes.Equal(rec.Prev, head) {
			return fmt.Errorf("%w: journal record %d does not follow record %d", ErrCorrupt, rec.Seq, int64(count)-1)
		}
		sum := sha256.Sum256(plain)
		head = sum[:]
		count++
		return nil
	})
	return count, head, err
}
