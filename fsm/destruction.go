package fsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Certified destruction. The processor (operator) asks, the controller (organizer)
// authorizes, each as a recorded command and never the same principal; the authorization,
// once the retention period has passed, destroys in the state machine everything but the
// candidate lists (with their scrutins), the digests of the minutes and results, and the
// bureau's appointments. Each node then destroys its data keys and files (node/destruction.go)
// and reports it with RECORD_ERASURE; the certificate lists all of it.

// ArchiveRetentionYears is how long the default legal profile keeps an election's data after
// the vote closed, unless the election names its own deletion date.
const ArchiveRetentionYears = 2

// Register actions of the destruction.
const (
	JournalDestructionRequested = "request destruction"
	JournalDataDestroyed        = "destroy data"
)

// destroyedBuckets are emptied by the destruction; the register, lists, scrutins and meta stay.
var destroyedBuckets = [][]byte{bucketAccounts, bucketBox, bucketEmargement, bucketHomonyms,
	bucketLogins, bucketOutbox, bucketSessions, bucketVoters}

func init() {
	handlers[fsmpb.CommandType_COMMAND_REQUEST_DESTRUCTION] = typed(newMessage[fsmpb.DestructionStep], checkDestructionStep, applyRequestDestruction)
	handlers[fsmpb.CommandType_COMMAND_AUTHORIZE_DESTRUCTION] = typed(newMessage[fsmpb.DestructionStep], checkDestructionStep, applyAuthorizeDestruction)
	handlers[fsmpb.CommandType_COMMAND_RECORD_ERASURE] = typed(newMessage[fsmpb.RecordErasure], checkRecordErasure, applyRecordErasure)
}

// describeErasure names a node's erasure report in the activity register.
func describeErasure(e *audit.Entry, c *fsmpb.Command) {
	e.Action, e.Object = "record erasure", "election data"
	p := &fsmpb.RecordErasure{}
	if proto.Unmarshal(c.Payload, p) == nil {
		e.Object = "data of " + clip(p.NodeId)
		e.Detail = clip(fmt.Sprintf("keys %v, files %v", p.Keys, p.Files))
	}
}

func checkDestructionStep(p *fsmpb.DestructionStep) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	return checkText("reason", p.Reason)
}

func checkRecordErasure(p *fsmpb.RecordErasure) error {
	if err := checkID("node id", p.NodeId); err != nil {
		return err
	}
	if len(p.Keys) > 64 || len(p.Files) > 64 {
		return fmt.Errorf("%w: an erasure report names at most 64 keys and 64 files", ErrInvalid)
	}
	for _, v := range append(append([]string(nil), p.Keys...), p.Files...) {
		if err := checkText("erased item", v); err != nil {
			return err
		}
	}
	return nil
}

// DestructionDue is when the election's data may be destroyed: its own deletion date if it
// names one, else two years after the vote closed (a test election: as soon as it closed).
// Zero while the vote has not closed.
func DestructionDue(e *fsmpb.ElectionState) int64 {
	if d := e.GetConfig().GetDeletionAtUnixNano(); d > 0 {
		return d
	}
	if e.ClosedAtUnixNano == 0 {
		return 0
	}
	if !rulesOf(e).legal {
		return e.ClosedAtUnixNano
	}
	return time.Unix(0, e.ClosedAtUnixNano).UTC().AddDate(ArchiveRetentionYears, 0, 0).UnixNano()
}

// destructionAllowed checks the phase and the date, for both steps.
func destructionAllowed(e *fsmpb.ElectionState, now int64) error {
	phases := []int32{PhaseClosed, PhaseTallied, PhaseArchived}
	if rulesOf(e).legal {
		phases = []int32{PhaseArchived} // the sealed archive must exist before the data go
	}
	if err := requirePhase(e, phases...); err != nil {
		return err
	}
	if due := DestructionDue(e); due == 0 || now < due {
		return fmt.Errorf("%w: the data of election %q are kept until %s", ErrRuleViolated, e.ElectionId, stamp(due))
	}
	return nil
}

func requirePrincipal(c *fsmpb.Command, want, what string) error {
	if got := c.GetActor().GetPrincipal(); got != want {
		return fmt.Errorf("%w: only %s may %s; this request came from %q", ErrNotAllowed, want, what, got)
	}
	return nil
}

// applyRequestDestruction records the processor's request; a repeat answers the record.
func applyRequestDestruction(s *applyState, c *fsmpb.Command, p *fsmpb.DestructionStep) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if err := requirePrincipal(c, ActorOperator, "ask for the destruction (the processor)"); err != nil {
		return nil, err
	}
	if e.Destruction != nil {
		return electionResponse(e), nil
	}
	if err := destructionAllowed(e, c.StampedAtUnixNano); err != nil {
		return nil, err
	}
	e.Destruction = &fsmpb.Destruction{RequestedBy: ActorOperator, RequestedAtUnixNano: c.StampedAtUnixNano,
		Reason: p.Reason, DueAtUnixNano: DestructionDue(e)}
	s.electionDirty = true
	if err := s.journal(c, JournalDestructionRequested, nil, "destruction requested by %s: %s", ActorOperator, p.Reason); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// applyAuthorizeDestruction is the controller's authorization, and the destruction itself.
func applyAuthorizeDestruction(s *applyState, c *fsmpb.Command, p *fsmpb.DestructionStep) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if err := requirePrincipal(c, ActorOrganizer, "authorize the destruction (the controller)"); err != nil {
		return nil, err
	}
	d := e.Destruction
	switch {
	case d == nil:
		return nil, fmt.Errorf("%w: no destruction was requested: the processor (operator) asks first", ErrRuleViolated)
	case d.AuthorizedAtUnixNano != 0:
		return electionResponse(e), nil
	case d.RequestedBy == c.GetActor().GetPrincipal():
		return nil, fmt.Errorf("%w: the request and the authorization must come from two principals", ErrNotAllowed)
	}
	if err := destructionAllowed(e, c.StampedAtUnixNano); err != nil {
		return nil, err
	}
	if err := s.destroy(c, e); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// destroy empties the destroyed buckets (deleting a bucket frees its pages; the node's key
// destruction then makes any copy of them unreadable), erases every connection detail of the
// register, and keeps only what the decrees keep.
func (s *applyState) destroy(c *fsmpb.Command, e *fsmpb.ElectionState) error {
	d := e.Destruction
	for _, b := range destroyedBuckets {
		n := keyCount(s.tx.Bucket(b))
		if err := s.tx.DeleteBucket(b); err != nil {
			return storageErr("destroy bucket %s: %w", b, err)
		}
		if _, err := s.tx.CreateBucket(b); err != nil {
			return storageErr("recreate bucket %s: %w", b, err)
		}
		d.Destroyed = append(d.Destroyed, fmt.Sprintf("%s: %d records", b, n))
	}
	for _, k := range [][]byte{keyBoxDigest, keyBoxSlices, keyRetentionCursor} {
		if err := s.tx.Bucket(bucketMeta).Delete(k); err != nil {
			return storageErr("destroy %s: %w", k, err)
		}
	}
	s.box = boxState{}
	erased, entries, err := s.eraseAllConnections()
	if err != nil {
		return err
	}
	d.Destroyed = append(d.Destroyed, fmt.Sprintf("register: connection details of %d entries", erased),
		"election index key (keyed hashes of voters can no longer be computed)", "bureau members' email addresses and phone numbers")
	if len(e.ArchiveDigest) > 0 {
		d.Destroyed = append(d.Destroyed, fmt.Sprintf("sealed archive with manifest %x (its copies: see the operators' erasure)", e.ArchiveDigest))
	}
	e.IndexKey = nil
	s.mac = nil
	for _, m := range e.GetConfig().GetBureau() {
		m.Email, m.Phone = "", ""
	}
	d.Kept = []string{
		fmt.Sprintf("candidate lists: %d, with their %d scrutins", keyCount(s.tx.Bucket(bucketLists)), keyCount(s.tx.Bucket(bucketScrutins))),
		fmt.Sprintf("minutes (digest %x) and results (digest %x)", e.MinutesDigest, e.ResultsDigest),
		fmt.Sprintf("bureau appointments: %d members (name and function)", len(e.GetConfig().GetBureau())),
		fmt.Sprintf("activity register: %d entries, without connection details", entries),
	}
	d.AuthorizedBy, d.AuthorizedAtUnixNano = c.GetActor().GetPrincipal(), c.StampedAtUnixNano
	s.counters.Voters, s.counters.Emargements, s.counters.Ballots, s.counters.OutboxPending = 0, 0, 0, 0
	s.countersDirty, s.electionDirty = true, true
	return s.journal(c, JournalDataDestroyed, nil, "destruction authorized by %s: %d kinds of records destroyed", d.AuthorizedBy, len(d.Destroyed))
}

// eraseAllConnections drops the connection details of every register entry.
func (s *applyState) eraseAllConnections() (erased, entries int, err error) {
	type rewrite struct {
		key []byte
		b   []byte
	}
	var out []rewrite
	err = s.tx.Bucket(bucketRegister).ForEach(func(k, v []byte) error {
		entries++
		e, err := openRegisterValue(s.sealer, k, v)
		if err != nil || e.Connection == nil {
			return err
		}
		e.EraseConnection()
		b, err := e.MarshalBinary()
		out = append(out, rewrite{append([]byte(nil), k...), b})
		return err
	})
	for _, r := range out {
		if err == nil {
			err = putSealed(s.tx, s.sealer, bucketRegister, r.key, r.b)
		}
	}
	return len(out), entries, err
}

// applyRecordErasure adds one node's erasure to the destruction record; a node reporting
// again replaces its report.
func applyRecordErasure(s *applyState, c *fsmpb.Command, p *fsmpb.RecordErasure) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection("")
	if err != nil {
		return nil, err
	}
	d := e.GetDestruction()
	if d.GetAuthorizedAtUnixNano() == 0 {
		return nil, fmt.Errorf("%w: no destruction was authorized", ErrRuleViolated)
	}
	p.ErasedAtUnixNano = c.StampedAtUnixNano
	for i, old := range d.Erasures {
		if old.NodeId == p.NodeId {
			d.Erasures[i] = p
			s.electionDirty = true
			return &fsmpb.Response{}, nil
		}
	}
	d.Erasures = append(d.Erasures, p)
	s.electionDirty = true
	return &fsmpb.Response{}, nil
}

// ElectionState returns the election's whole stored record (nil if none) and the applied
// index: the node reads the destruction and the archive digest from it.
func (f *FSM) ElectionState() (*fsmpb.ElectionState, uint64, error) {
	var e *fsmpb.ElectionState
	var index uint64
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		if index, err = readAppliedIndex(tx, f.sealer); err != nil {
			return err
		}
		e, err = readElection(tx, f.sealer)
		return err
	})
	return e, index, err
}

// Reseal rewrites the whole database into a new file, every value sealed again under the
// sealer's current primary key, and swaps it in like a restore. Applies wait meanwhile. After
// a key rotation it leaves nothing in the live file under an older key, so the older key may
// be destroyed; the pages of the old file are freed with it.
func (f *FSM) Reseal() error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if f.closed() {
		return ErrClosed
	}
	tmp := f.path + restoreSuffix
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(f.view(func(tx *bolt.Tx) error {
			index, err := readAppliedIndex(tx, f.sealer)
			if err != nil {
				return err
			}
			return writeSnapshot(pw, tx, f.sealer, index)
		}))
	}()
	_, err := f.buildFromSnapshot(tmp, pr)
	_ = pr.CloseWithError(errors.New("reseal stopped"))
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("fsm: reseal, current state kept: %w", err)
	}
	return f.swapIn(tmp)
}
