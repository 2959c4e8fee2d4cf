package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// BuildDigestSize is the size of the build digest a seal or an opening carries (SHA-256).
const BuildDigestSize = sha256.Size

const sealLabel = "urne-seal-v1"

func digestOf(b []byte) [32]byte { return sha256.Sum256(b) }

// applySeal seals the election: one digest over what may no longer change (identity and
// profile, configuration, scrutins, candidate lists, roll, election key and policy) and the
// build of the software running it. The bureau is told by email through the outbox.
func applySeal(s *applyState, c *fsmpb.Command, p *fsmpb.SealElection) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil || e.Phase == PhaseSealed {
		return electionOrError(e, err)
	}
	if err := requirePhase(e, PhaseDraft); err != nil {
		return nil, err
	}
	if err := requireActor(e, c, "seal the election", ActorBureau); err != nil {
		return nil, err
	}
	if err := s.checkSealable(e, c.StampedAtUnixNano); err != nil {
		return nil, err
	}
	digest, err := s.sealDigest(e, p.BuildDigest)
	if err != nil {
		return nil, err
	}
	e.Seal = &fsmpb.SealRecord{Digest: digest, BuildDigest: p.BuildDigest, SealedAtUnixNano: c.StampedAtUnixNano, SealedBy: c.GetActor().GetPrincipal()}
	e.Phase = PhaseSealed
	s.electionDirty = true
	if err := s.journal(c, JournalSealed, nil, "seal %x over build %x", digest, p.BuildDigest); err != nil {
		return nil, err
	}
	return electionResponse(e), s.notifyBureau(c, e)
}

// checkSealable asks, of a legal election, everything the vote needs: who runs it, a window
// still ahead, a president, scrutins each with a list, a roll, and the election key.
func (s *applyState) checkSealable(e *fsmpb.ElectionState, now int64) error {
	if !rulesOf(e).legal {
		return nil
	}
	cfg := e.GetConfig()
	missing := []string{}
	need := func(ok bool, what string) {
		if !ok {
			missing = append(missing, what)
		}
	}
	need(cfg.GetOrganizer() != "" && cfg.GetController() != "" && cfg.GetProcessor() != "", "organizer, controller and processor")
	need(cfg.GetOpensAtUnixNano() > now, "a voting window that has not begun")
	need(hasPresident(cfg), "a bureau with a president")
	need(s.counters.Voters > 0, "a voter roll")
	need(len(e.ElectionPublicKey) > 0, "the election public key")
	scrutins, err := s.scrutinsWithoutList()
	if err != nil {
		return err
	}
	need(scrutins == "", "a candidate list in every scrutin"+scrutins)
	need(!isEmpty(s.tx.Bucket(bucketScrutins)), "at least one scrutin")
	if len(missing) > 0 {
		return fmt.Errorf("%w: a %s election cannot be sealed without %v", ErrRuleViolated, profileName(e), missing)
	}
	return nil
}

func hasPresident(cfg *fsmpb.ElectionConfig) bool {
	return slices.ContainsFunc(cfg.GetBureau(), func(m *fsmpb.BureauMember) bool { return m.Function == bureauFunctionPresident })
}

// sealDigest hashes, length-prefixed and in a fixed order, the stored bytes of everything
// sealing freezes. It reads the stored plaintext rather than re-encoding, so the digest does
// not depend on how a later version would encode the same records.
func (s *applyState) sealDigest(e *fsmpb.ElectionState, build []byte) ([]byte, error) {
	h := sha256.New()
	config, err := marshalOptions.Marshal(e.GetConfig())
	if err != nil {
		return nil, storageErr("encode configuration: %w", err)
	}
	for _, field := range [][]byte{[]byte(sealLabel), []byte(e.ElectionId), []byte(e.Name), []byte(e.Profile),
		config, e.ElectionPublicKey, e.KeyPolicy, build} {
		writeField(h, field)
	}
	for _, bucket := range [][]byte{bucketScrutins, bucketLists, bucketVoters} {
		if err := s.hashBucket(h, bucket); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}

func (s *applyState) hashBucket(h hash.Hash, bucket []byte) error {
	writeField(h, bucket)
	return s.tx.Bucket(bucket).ForEach(func(k, sealed []byte) error {
		plain, err := s.sealer.Open(location(bucket, k), sealed)
		if err != nil {
			return storageErr("open a sealed value of bucket %s: %w", bucket, err)
		}
		writeField(h, k)
		writeField(h, plain)
		return nil
	})
}

func writeField(h hash.Hash, b []byte) {
	var n [binary.MaxVarintLen64]byte
	h.Write(binary.AppendUvarint(n[:0], uint64(len(b))))
	h.Write(b)
}

// checkSealIntact recomputes the seal and compares the build the opening node runs with the
// sealed one: the decrees ask the bureau to check, at opening, that nothing changed.
func (s *applyState) checkSealIntact(e *fsmpb.ElectionState, build []byte) error {
	digest, err := s.sealDigest(e, e.Seal.BuildDigest)
	if err != nil {
		return err
	}
	if !bytes.Equal(digest, e.Seal.Digest) {
		return fmt.Errorf("%w: the sealed state no longer matches its seal (sealed %x, now %x)", ErrRuleViolated, e.Seal.Digest, digest)
	}
	if !bytes.Equal(build, e.Seal.BuildDigest) {
		return fmt.Errorf("%w: the software was sealed as build %x, the node opening the vote runs build %x",
			ErrRuleViolated, e.Seal.BuildDigest, build)
	}
	return nil
}

// SealDigest recomputes, in a read transaction, the seal over the current state with the
// sealed build and returns it with the recorded one: the integrity check compares the two.
// Before sealing (and in a test election, which opens unsealed) both are nil: there is
// nothing to compare, and hashing the roll again would cost a pass over it for nothing.
func (f *FSM) SealDigest() (recorded, now []byte, err error) {
	err = f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e.GetSeal() == nil {
			return err
		}
		recorded = e.GetSeal().GetDigest()
		now, err = f.recomputeSeal(tx, e)
		return err
	})
	return recorded, now, err
}

// recomputeSeal hashes the seal of e again over what tx holds, with the build e was sealed with.
func (f *FSM) recomputeSeal(tx *bolt.Tx, e *fsmpb.ElectionState) ([]byte, error) {
	return (&applyState{tx: tx, sealer: f.sealer, election: e}).sealDigest(e, e.GetSeal().GetBuildDigest())
}
