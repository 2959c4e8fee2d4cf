package fsm

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"slices"
	"strings"

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
	fsmpb.CommandType_COMMAND_CREATE_ELECTION:    typed(newMessage[fsmpb.CreateElection], checkCreateElection, applyCreateElection),
	fsmpb.CommandType_COMMAND_IMPORT_VOTERS:      typed(newMessage[fsmpb.ImportVoters], checkImportVoters, applyImportVoters),
	fsmpb.CommandType_COMMAND_OPEN_ELECTION:      typed(newMessage[fsmpb.Transition], checkTransition, applyOpenElection),
	fsmpb.CommandType_COMMAND_CLOSE_ELECTION:     typed(newMessage[fsmpb.Transition], checkTransition, applyCloseElection),
	fsmpb.CommandType_COMMAND_CAST:               typed(newMessage[fsmpb.Cast], checkCast, applyCast),
	fsmpb.CommandType_COMMAND_NOOP:               {parse: func(*fsmpb.Command) (any, error) { return nil, nil }, apply: applyNoop},
	fsmpb.CommandType_COMMAND_CONFIGURE_ELECTION: typed(newMessage[fsmpb.ConfigureElection], checkConfigure, applyConfigure),
	fsmpb.CommandType_COMMAND_PUT_SCRUTIN:        typed(newMessage[fsmpb.PutScrutin], checkPutScrutin, applyPutScrutin),
	fsmpb.CommandType_COMMAND_PUT_CANDIDATE_LIST: typed(newMessage[fsmpb.PutCandidateList], checkPutList, applyPutList),
	fsmpb.CommandType_COMMAND_SET_ELECTION_KEY:   typed(newMessage[fsmpb.SetElectionKey], checkSetKey, applySetKey),
	fsmpb.CommandType_COMMAND_SEAL_ELECTION:      typed(newMessage[fsmpb.SealElection], checkSeal, applySeal),
	fsmpb.CommandType_COMMAND_TICK:               typed(newMessage[fsmpb.Tick], func(*fsmpb.Tick) error { return nil }, applyTick),
	fsmpb.CommandType_COMMAND_RECORD_TALLY:       typed(newMessage[fsmpb.RecordTally], checkRecordTally, applyRecordTally),
	fsmpb.CommandType_COMMAND_ARCHIVE_ELECTION:   typed(newMessage[fsmpb.Transition], checkTransition, applyArchive),
	fsmpb.CommandType_COMMAND_ISSUE_IDENTIFIERS:  typed(newMessage[fsmpb.IssueIdentifiers], checkIssue, applyIssueIdentifiers),
	fsmpb.CommandType_COMMAND_OUTBOX_DONE:        typed(newMessage[fsmpb.OutboxDone], checkOutboxDone, applyOutboxDone),
	fsmpb.CommandType_COMMAND_RECORD_LOGIN:       typed(newMessage[fsmpb.RecordLogin], checkRecordLogin, applyRecordLogin),
	fsmpb.CommandType_COMMAND_REQUEST_OTP:        typed(newMessage[fsmpb.RequestOTP], checkRequestOTP, applyRequestOTP),
	fsmpb.CommandType_COMMAND_VERIFY_OTP:         typed(newMessage[fsmpb.VerifyOTP], checkVerifyOTP, applyVerifyOTP),
	fsmpb.CommandType_COMMAND_UNLOCK_ACCOUNT:     typed(newMessage[fsmpb.UnlockAccount], checkUnlock, applyUnlock),
	fsmpb.CommandType_COMMAND_RECORD_DRILL:       typed(newMessage[fsmpb.RecordDrill], checkRecordDrill, applyRecordDrill),
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
	index         uint64    // raft index of the entry being applied
	register      registerState
	box           boxState
	notes         []registerNote // what the command being applied tells the register
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
	if err := s.flushRegisterHead(); err != nil {
		return err
	}
	if err := s.flushBox(); err != nil {
		return err
	}
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

func wrongPhase(e *fsmpb.ElectionState, wanted ...int32) error {
	names := make([]string, len(wanted))
	for i, w := range wanted {
		names[i] = phaseName(w)
	}
	return fmt.Errorf("%w: election %q is %s, the command needs it %s",
		ErrWrongPhase, e.ElectionId, phaseName(e.Phase), strings.Join(names, " or "))
}

// requirePhase refuses unless the election is in one of the phases.
func requirePhase(e *fsmpb.ElectionState, phases ...int32) error {
	if slices.Contains(phases, e.Phase) {
		return nil
	}
	return wrongPhase(e, phases...)
}

// requireDraft guards what sealing freezes: configuration, scrutins, lists, key and roll.
func requireDraft(e *fsmpb.ElectionState, what string) error {
	if e.Phase == PhaseDraft {
		return nil
	}
	if e.Seal != nil {
		return fmt.Errorf("%w: election %q was sealed at %s (digest %x): %s can no longer change",
			ErrSealed, e.ElectionId, stamp(e.Seal.SealedAtUnixNano), e.Seal.Digest, what)
	}
	return wrongPhase(e, PhaseDraft)
}

func electionResponse(e *fsmpb.ElectionState) *fsmpb.Response {
	return &fsmpb.Response{Result: &fsmpb.Response_Election{Election: electionResult(e)}}
}

func electionResult(e *fsmpb.ElectionState) *fsmpb.ElectionResult {
	return &fsmpb.ElectionResult{
		ElectionId:         e.ElectionId,
		Name:               e.Name,
		Phase:              e.Phase,
		CreatedAtUnixNano:  e.CreatedAtUnixNano,
		OpenedAtUnixNano:   e.OpenedAtUnixNano,
		ClosedAtUnixNano:   e.ClosedAtUnixNano,
		Profile:            profileName(e),
		Config:             e.Config,
		Seal:               e.Seal,
		BoxRoot:            e.BoxRoot,
		TalliedAtUnixNano:  e.TalliedAtUnixNano,
		ArchivedAtUnixNano: e.ArchivedAtUnixNano,
		ClosedBy:           e.ClosedBy,
		ResultsDigest:      e.ResultsDigest,
		MinutesDigest:      e.MinutesDigest,
		ElectionPublicKey:  e.ElectionPublicKey,
	}
}

func applyNoop(*applyState, *fsmpb.Command, any) (*fsmpb.Response, error) {
	return &fsmpb.Response{}, nil
}
