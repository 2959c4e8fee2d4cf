package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// handler is one command type: parse decodes and checks the payload (the checks of
// Validate), apply changes state. Every apply checks everything before its first write,
// because the commands of a batch share one transaction: a refusal must leave no trace.
type handler struct {
	parse func(c *fsmpb.Command) (any, error)
	apply func(s *applyState, c *fsmpb.Command, payload any) (*fsmpb.Response, error)
}

// handlers is the dispatch table of the state machine, one entry per command type.
var handlers = map[fsmpb.CommandType]handler{
	fsmpb.CommandType_COMMAND_CREATE_ELECTION: typed(newMessage[fsmpb.CreateElection], checkCreateElection, applyCreateElection),
	fsmpb.CommandType_COMMAND_IMPORT_VOTERS:   typed(newMessage[fsmpb.ImportVoters], checkImportVoters, applyImportVoters),
	fsmpb.CommandType_COMMAND_OPEN_ELECTION:   typed(newMessage[fsmpb.Transition], checkTransition, applyOpenElection),
	fsmpb.CommandType_COMMAND_CLOSE_ELECTION:  typed(newMessage[fsmpb.Transition], checkTransition, applyCloseElection),
	fsmpb.CommandType_COMMAND_CAST:            typed(newMessage[fsmpb.Cast], checkCast, applyCast),
	fsmpb.CommandType_COMMAND_NOOP:            {parse: func(*fsmpb.Command) (any, error) { return nil, nil }, apply: applyNoop},
}

func newMessage[T any]() *T { return new(T) }

// typed builds a handler from a payload type, its checks and its apply function.
func typed[T any, P interface {
	*T
	proto.Message
}](newT func() P, check func(P) error, apply func(*applyState, *fsmpb.Command, P) (*fsmpb.Response, error)) handler {
	return handler{
		parse: func(c *fsmpb.Command) (any, error) {
			p := newT()
			if err := proto.Unmarshal(c.Payload, p); err != nil {
				return nil, fmt.Errorf("%w: malformed %s payload: %v", ErrInvalid, c.Type, err)
			}
			if err := check(p); err != nil {
				return nil, err
			}
			return p, nil
		},
		apply: func(s *applyState, c *fsmpb.Command, p any) (*fsmpb.Response, error) {
			return apply(s, c, p.(P))
		},
	}
}

// applyState is the view of one write transaction shared by the commands of a batch.
// Meta records are loaded once and written back once, with the applied index.
type applyState struct {
	tx            *bolt.Tx
	sealer        Sealer
	election      *fsmpb.ElectionState // nil until CREATE_ELECTION
	counters      *fsmpb.Counters
	electionDirty bool
	countersDirty bool
	mac           hash.Hash // HMAC keyed with the index key, made once per batch
}

// indexMAC returns the HMAC keyed with the election's index key. The key never changes
// once drawn, so one HMAC serves the whole batch.
func (s *applyState) indexMAC() hash.Hash {
	if s.mac == nil {
		s.mac = hmac.New(sha256.New, s.election.IndexKey)
	}
	return s.mac
}

func loadApplyState(tx *bolt.Tx, s Sealer) (*applyState, error) {
	e, err := readElection(tx, s)
	if err != nil {
		return nil, err
	}
	c, err := readCounters(tx, s)
	if err != nil {
		return nil, err
	}
	return &applyState{tx: tx, sealer: s, election: e, counters: c}, nil
}

// flush writes the meta records and the applied index in the data's transaction (invariant 2).
func (s *applyState) flush(applied uint64) error {
	if s.electionDirty {
		if err := putMessage(s.tx, s.sealer, bucketMeta, keyElection, s.election); err != nil {
			return err
		}
	}
	if s.countersDirty {
		if err := putMessage(s.tx, s.sealer, bucketMeta, keyCounters, s.counters); err != nil {
			return err
		}
	}
	return writeAppliedIndex(s.tx, s.sealer, applied)
}

// apply runs one decoded command and turns domain refusals into responses. Only storage
// failures come back as errors.
func (s *applyState) apply(c *fsmpb.Command) (*fsmpb.Response, error) {
	h, ok := handlers[c.Type]
	if !ok {
		return unknownCommand(c), nil
	}
	payload, err := h.parse(c)
	if err != nil {
		return errorResponse(err), nil
	}
	resp, err := h.apply(s, c, payload)
	if _, fatal := err.(*storageError); fatal {
		return nil, err
	}
	if err != nil {
		return errorResponse(err), nil
	}
	return resp, nil
}

// unknownCommand is the rolling-upgrade rule (invariant 7): a type this version does not
// know is skipped if its proposer allowed it, refused otherwise; it never stops the node.
func unknownCommand(c *fsmpb.Command) *fsmpb.Response {
	if c.Flags&uint32(fsmpb.CommandFlag_FLAG_IGNORE_UNKNOWN) != 0 {
		return &fsmpb.Response{Message: fmt.Sprintf("ignored unknown command type %d", c.Type)}
	}
	return errorResponse(fmt.Errorf("%w: type %d is unknown to this version and not flagged ignorable",
		ErrUnknownCommand, c.Type))
}

func requireStamp(c *fsmpb.Command) error {
	if c.StampedAtUnixNano <= 0 {
		return fmt.Errorf("%w: %s carries no leader time stamp", ErrInvalid, c.Type)
	}
	return nil
}

// currentElection returns the election, refusing when there is none or when the command
// names another one.
func (s *applyState) currentElection(named string) (*fsmpb.ElectionState, error) {
	if s.election == nil {
		return nil, fmt.Errorf("%w: create the election first", ErrNoElection)
	}
	if named != "" && named != s.election.ElectionId {
		return nil, fmt.Errorf("%w: this cluster runs election %q, not %q", ErrWrongElection, s.election.ElectionId, named)
	}
	return s.election, nil
}

func wrongPhase(e *fsmpb.ElectionState, wanted int32) error {
	return fmt.Errorf("%w: election %q is %s, the command needs it %s",
		ErrWrongPhase, e.ElectionId, phaseName(e.Phase), phaseName(wanted))
}

func electionResponse(e *fsmpb.ElectionState) *fsmpb.Response {
	return &fsmpb.Response{Result: &fsmpb.Response_Election{Election: electionResult(e)}}
}

func electionResult(e *fsmpb.ElectionState) *fsmpb.ElectionResult {
	return &fsmpb.ElectionResult{
		ElectionId:        e.ElectionId,
		Name:              e.Name,
		Phase:             e.Phase,
		CreatedAtUnixNano: e.CreatedAtUnixNano,
		OpenedAtUnixNano:  e.OpenedAtUnixNano,
		ClosedAtUnixNano:  e.ClosedAtUnixNano,
	}
}

func applyNoop(*applyState, *fsmpb.Command, any) (*fsmpb.Response, error) {
	return &fsmpb.Response{}, nil
}

// applyCreateElection creates the one election of the cluster; a retry with the same id
// answers the existing state.
func applyCreateElection(s *applyState, c *fsmpb.Command, p *fsmpb.CreateElection) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	if len(p.IndexKey) != IndexKeySize {
		return nil, fmt.Errorf("%w: CREATE_ELECTION carries no index key: it was not stamped", ErrInvalid)
	}
	if s.election != nil {
		if s.election.ElectionId != p.ElectionId {
			return nil, fmt.Errorf("%w: this cluster already runs election %q, not %q",
				ErrWrongElection, s.election.ElectionId, p.ElectionId)
		}
		return electionResponse(s.election), nil
	}
	s.election = &fsmpb.ElectionState{
		ElectionId:        p.ElectionId,
		Name:              p.Name,
		Phase:             PhaseDraft,
		CreatedAtUnixNano: c.StampedAtUnixNano,
		IndexKey:          p.IndexKey,
	}
	s.electionDirty = true
	return electionResponse(s.election), nil
}

func applyOpenElection(s *applyState, c *fsmpb.Command, p *fsmpb.Transition) (*fsmpb.Response, error) {
	return s.transition(c, p, PhaseDraft, PhaseOpen)
}

func applyCloseElection(s *applyState, c *fsmpb.Command, p *fsmpb.Transition) (*fsmpb.Response, error) {
	return s.transition(c, p, PhaseOpen, PhaseClosed)
}

// transition moves the election from one phase to the next; repeating it once done is a
// retry and answers OK (invariant 3).
func (s *applyState) transition(c *fsmpb.Command, p *fsmpb.Transition, from, to int32) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if e.Phase == to {
		return electionResponse(e), nil
	}
	if e.Phase != from {
		return nil, wrongPhase(e, from)
	}
	e.Phase = to
	if to == PhaseOpen {
		e.OpenedAtUnixNano = c.StampedAtUnixNano
	} else {
		e.ClosedAtUnixNano = c.StampedAtUnixNano
	}
	s.electionDirty = true
	return electionResponse(e), nil
}

// applyImportVoters adds or rectifies voters of the roll while the election is a draft.
func applyImportVoters(s *applyState, _ *fsmpb.Command, p *fsmpb.ImportVoters) (*fsmpb.Response, error) {
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if e.Phase != PhaseDraft {
		return nil, wrongPhase(e, PhaseDraft)
	}
	result := &fsmpb.ImportResult{}
	for _, v := range p.Voters {
		changed, added, err := s.putVoter(v)
		if err != nil {
			return nil, err
		}
		if !changed {
			result.Unchanged++
			continue
		}
		result.Imported++
		if added {
			s.counters.Voters++
			s.countersDirty = true
		}
	}
	result.TotalVoters = s.counters.Voters
	return &fsmpb.Response{Result: &fsmpb.Response_Import{Import: result}}, nil
}

// putVoter stores v unless an identical record is already there.
func (s *applyState) putVoter(v *fsmpb.VoterRecord) (changed, added bool, err error) {
	key := voterKeyWith(s.indexMAC(), v.VoterId)
	record, err := marshalOptions.Marshal(&fsmpb.VoterRecord{VoterId: v.VoterId, Name: v.Name, Email: v.Email})
	if err != nil {
		return false, false, storageErr("encode voter record: %w", err)
	}
	old, found, err := getOpened(s.tx, s.sealer, bucketVoters, key)
	if err != nil {
		return false, false, err
	}
	if found && bytes.Equal(old, record) {
		return false, false, nil
	}
	return true, !found, putSealed(s.tx, s.sealer, bucketVoters, key, record)
}

// applyCast records a vote: the émargement under the voter's keyed hash, the ballot under
// its fingerprint, in the same transaction. All checks come before either write.
func applyCast(s *applyState, c *fsmpb.Command, p *fsmpb.Cast) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if e.Phase == PhaseDraft {
		return nil, wrongPhase(e, PhaseOpen)
	}
	key := voterKeyWith(s.indexMAC(), p.VoterId)
	if s.tx.Bucket(bucketVoters).Get(key) == nil {
		return nil, fmt.Errorf("%w: the voter id is not on the roll of election %q", ErrUnknownVoter, e.ElectionId)
	}
	fingerprint := sha256.Sum256(p.Ballot)
	check := castCheckWith(s.indexMAC(), p.RequestId, fingerprint[:])
	if resp, done, err := s.replayCast(key, check, fingerprint[:]); done || err != nil {
		return resp, err
	}
	// A retry is answered even after closing; a first cast needs the election open.
	if e.Phase != PhaseOpen {
		return nil, wrongPhase(e, PhaseOpen)
	}
	if s.tx.Bucket(bucketBox).Get(fingerprint[:]) != nil {
		return nil, fmt.Errorf("%w: a ballot with fingerprint %x is already in the box", ErrDuplicateBallot, fingerprint)
	}
	return s.recordCast(c, p, key, check, fingerprint[:])
}

// replayCast answers a voter who already has an émargement: the first receipt for a retry
// of the same request and ballot, a refusal for anything else.
func (s *applyState) replayCast(key, check, fingerprint []byte) (*fsmpb.Response, bool, error) {
	em := &fsmpb.EmargementRecord{}
	found, err := getMessage(s.tx, s.sealer, bucketEmargement, key, em)
	if err != nil || !found {
		return nil, false, err
	}
	if !bytes.Equal(em.Check, check) {
		return nil, true, fmt.Errorf("%w: the voter already has an émargement from another request or ballot", ErrAlreadyVoted)
	}
	return castResponse(fingerprint, em.EmargedAtUnixNano, true), true, nil
}

func (s *applyState) recordCast(c *fsmpb.Command, p *fsmpb.Cast, key, check, fingerprint []byte) (*fsmpb.Response, error) {
	em := &fsmpb.EmargementRecord{EmargedAtUnixNano: c.StampedAtUnixNano, Check: check}
	if err := putMessage(s.tx, s.sealer, bucketEmargement, key, em); err != nil {
		return nil, err
	}
	if err := putSealed(s.tx, s.sealer, bucketBox, fingerprint, p.Ballot); err != nil {
		return nil, err
	}
	s.counters.Emargements++
	s.counters.Ballots++
	s.countersDirty = true
	return castResponse(fingerprint, c.StampedAtUnixNano, false), nil
}

func castResponse(fingerprint []byte, emargedAt int64, replayed bool) *fsmpb.Response {
	return &fsmpb.Response{Result: &fsmpb.Response_Cast{Cast: &fsmpb.CastResult{
		Fingerprint: fingerprint, EmargedAtUnixNano: emargedAt, Replayed: replayed,
	}}}
}
