package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// casting is one cast once its voter is known: by id (opaque casts of test elections) or by
// session (the legal path).
type casting struct {
	voterKey      []byte
	emargementKey []byte
	session       *fsmpb.Session
	sessionHash   []byte
	scrutinID     string
	check         []byte
	fingerprint   []byte
	ballot        []byte
	boxValue      []byte
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
	if e.Phase == PhaseDraft || e.Phase == PhaseSealed {
		return nil, wrongPhase(e, PhaseOpen)
	}
	k, err := s.castVoter(e, c, p)
	if errors.Is(err, ErrSessionInvalid) && e.Phase != PhaseOpen {
		// The close purged every session: say why, not that the session is unknown.
		return nil, wrongPhase(e, PhaseOpen)
	}
	if err != nil {
		return nil, err
	}
	fingerprint := sha256.Sum256(p.Ballot)
	k.fingerprint, k.ballot = fingerprint[:], p.Ballot
	k.check = castCheckWith(s.indexMAC(), p.RequestId, k.fingerprint)
	if resp, done, err := s.replayCast(k); done || err != nil {
		return resp, err
	}
	// A retry is answered even after closing or once its session ended; a first cast needs
	// the election open, the window running and the session live.
	if e.Phase != PhaseOpen {
		return nil, wrongPhase(e, PhaseOpen)
	}
	if err := inWindow(e, c.StampedAtUnixNano); err != nil {
		return nil, err
	}
	if k.session != nil {
		if err := s.checkLive(e, k.session, c.StampedAtUnixNano); err != nil {
			return nil, err
		}
	}
	if s.tx.Bucket(bucketBox).Get(k.fingerprint) != nil {
		return nil, fmt.Errorf("%w: a ballot with fingerprint %x is already in the box", ErrDuplicateBallot, fingerprint)
	}
	if k.boxValue, err = boxValue(e, k.scrutinID, p.Ballot); err != nil {
		return nil, err
	}
	return s.recordCast(c, k)
}

// castVoter finds who casts: the voter id of an opaque cast, which only test elections take,
// or the voter of an active session.
func (s *applyState) castVoter(e *fsmpb.ElectionState, c *fsmpb.Command, p *fsmpb.Cast) (*casting, error) {
	if len(p.SessionHash) == 0 {
		if rulesOf(e).legal {
			return nil, fmt.Errorf("%w: election %q follows the %s profile: a cast needs a voting session and a sealed envelope; opaque casts are for test elections",
				ErrNotAllowed, e.ElectionId, profileName(e))
		}
		key := voterKeyWith(s.indexMAC(), p.VoterId)
		if s.tx.Bucket(bucketVoters).Get(key) == nil {
			return nil, fmt.Errorf("%w: the voter id is not on the roll of election %q", ErrUnknownVoter, e.ElectionId)
		}
		return &casting{voterKey: key, emargementKey: key}, nil
	}
	session, err := s.session(p.SessionHash)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(p.EnvelopeNonce, session.EnvelopeNonce) {
		return nil, fmt.Errorf("%w: the envelope carries a nonce this session was not given", ErrSessionInvalid)
	}
	if err := s.checkScrutin(e, session.VoterKey, p.ScrutinId); err != nil {
		return nil, err
	}
	return &casting{voterKey: session.VoterKey, emargementKey: s.emargementKey(session.VoterKey, p.ScrutinId),
		session: session, sessionHash: p.SessionHash, scrutinID: p.ScrutinId}, nil
}

// emargementKey is where a voter's émargement for a scrutin lives: the voter's keyed hash
// itself for the single box of a test election, a keyed hash of it and the scrutin otherwise.
func (s *applyState) emargementKey(voterKey []byte, scrutinID string) []byte {
	if scrutinID == "" {
		return voterKey
	}
	return keyedHash(s.indexMAC(), "emargement", voterKey, []byte(scrutinID))
}

// checkScrutin: a legal election's cast names a scrutin the voter is assigned to; a test
// election has one box and no scrutin.
func (s *applyState) checkScrutin(e *fsmpb.ElectionState, voterKey []byte, scrutinID string) error {
	if !rulesOf(e).legal {
		if scrutinID != "" {
			return fmt.Errorf("%w: a %s election has a single box; the cast names scrutin %q", ErrInvalid, profileName(e), scrutinID)
		}
		return nil
	}
	if scrutinID == "" {
		return fmt.Errorf("%w: the cast names no scrutin", ErrInvalid)
	}
	sc, err := s.scrutin(scrutinID)
	if err != nil {
		return err
	}
	v, found, err := s.voterRecord(voterKey)
	if err != nil {
		return err
	}
	if !found || !assigned(sc, v) {
		return fmt.Errorf("%w: the voter is not assigned to scrutin %q", ErrNotAllowed, scrutinID)
	}
	return nil
}

// boxValue is what the box stores: the ballot alone in a test election, the scrutin and the
// inner ballot in a legal one. Never a time, never a voter.
func boxValue(e *fsmpb.ElectionState, scrutinID string, ballot []byte) ([]byte, error) {
	if !rulesOf(e).legal {
		return ballot, nil
	}
	b, err := marshalOptions.Marshal(&fsmpb.BoxEntry{ScrutinId: scrutinID, Ballot: ballot})
	if err != nil {
		return nil, storageErr("encode box entry: %w", err)
	}
	return b, nil
}

// replayCast answers a voter who already has an émargement: the first receipt for a retry
// of the same request and ballot, a refusal for anything else.
func (s *applyState) replayCast(k *casting) (*fsmpb.Response, bool, error) {
	em := &fsmpb.EmargementRecord{}
	found, err := getMessage(s.tx, s.sealer, bucketEmargement, k.emargementKey, em)
	if err != nil || !found {
		return nil, false, err
	}
	if !bytes.Equal(em.Check, k.check) {
		return nil, true, fmt.Errorf("%w: the voter already has an émargement from another request or ballot", ErrAlreadyVoted)
	}
	return castResponse(k.fingerprint, em.EmargedAtUnixNano, true, k.scrutinID), true, nil
}

func (s *applyState) recordCast(c *fsmpb.Command, k *casting) (*fsmpb.Response, error) {
	em := &fsmpb.EmargementRecord{EmargedAtUnixNano: c.StampedAtUnixNano, Check: k.check}
	if err := putMessage(s.tx, s.sealer, bucketEmargement, k.emargementKey, em); err != nil {
		return nil, err
	}
	if err := putSealed(s.tx, s.sealer, bucketBox, k.fingerprint, k.boxValue); err != nil {
		return nil, err
	}
	if err := s.addToBox(k.fingerprint, k.ballot); err != nil {
		return nil, err
	}
	if k.session != nil {
		k.session.LastSeenUnixNano = c.StampedAtUnixNano
		if err := putMessage(s.tx, s.sealer, bucketSessions, k.sessionHash, k.session); err != nil {
			return nil, err
		}
	}
	s.counters.Emargements++
	s.counters.Ballots++
	s.countersDirty = true
	return castResponse(k.fingerprint, c.StampedAtUnixNano, false, k.scrutinID), nil
}

func castResponse(fingerprint []byte, emargedAt int64, replayed bool, scrutinID string) *fsmpb.Response {
	return &fsmpb.Response{Result: &fsmpb.Response_Cast{Cast: &fsmpb.CastResult{
		Fingerprint: fingerprint, EmargedAtUnixNano: emargedAt, Replayed: replayed, ScrutinId: scrutinID,
	}}}
}

// boxRoot is the digest of the box recorded at closing, over the fingerprints in box order.
func (s *applyState) boxRoot() ([]byte, error) {
	var fingerprints [][]byte
	err := s.tx.Bucket(bucketBox).ForEach(func(k, _ []byte) error {
		fingerprints = append(fingerprints, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return nil, storageErr("walk the box: %w", err)
	}
	return boxDigest(fingerprints), nil
}

// boxDigest is the Merkle root published with the box, over the fingerprints in ascending
// order (the box's key order): the tree hash of RFC 9162, leaf = SHA-256(0x00 | fp), node =
// SHA-256(0x01 | left | right), an unpaired last node moving up unchanged, SHA-256("") for an
// empty box. Every replica must compute it the same way, so it is a fixed function, not a
// pluggable one; ballot.MerkleRoot computes the same tree for voters' tools.
func boxDigest(fingerprints [][]byte) []byte {
	if len(fingerprints) == 0 {
		sum := sha256.Sum256(nil)
		return sum[:]
	}
	level := make([][]byte, len(fingerprints))
	for i, fp := range fingerprints {
		level[i] = merkleHash(0x00, fp)
	}
	for len(level) > 1 {
		next := make([][]byte, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			next = append(next, merkleHash(0x01, level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

func merkleHash(prefix byte, parts ...[]byte) []byte {
	h := sha256.New()
	h.Write([]byte{prefix})
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}
