package fsm

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// applyCreateElection creates the one election of the cluster; a retry with the same id
// answers the existing state.
func applyCreateElection(s *applyState, c *fsmpb.Command, p *fsmpb.CreateElection) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	if len(p.IndexKey) != IndexKeySize {
		return nil, fmt.Errorf("%w: CREATE_ELECTION carries no index key: it was not stamped", ErrInvalid)
	}
	profile, err := normalizeProfile(p.Profile)
	if err != nil {
		return nil, err
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
		Profile:           profile,
	}
	s.electionDirty = true
	if err := s.journal(c, JournalElectionCreated, nil, "election %q created, profile %s", p.ElectionId, profileName(s.election)); err != nil {
		return nil, err
	}
	return electionResponse(s.election), nil
}

// applyConfigure replaces the election's configuration while it is a draft.
func applyConfigure(s *applyState, c *fsmpb.Command, p *fsmpb.ConfigureElection) (*fsmpb.Response, error) {
	e, err := s.draftElection(c, p.ElectionId, "the configuration")
	if err != nil {
		return nil, err
	}
	if err := checkWindow(rulesOf(e), p.Config, c.StampedAtUnixNano); err != nil {
		return nil, err
	}
	if proto.Equal(e.Config, p.Config) {
		return electionResponse(e), nil
	}
	e.Config = p.Config
	s.electionDirty = true
	if err := s.journal(c, JournalElectionConfigured, nil, "organizer %q, window %s", p.Config.Organizer, windowText(p.Config)); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

func windowText(cfg *fsmpb.ElectionConfig) string {
	if cfg.GetOpensAtUnixNano() == 0 {
		return "none"
	}
	return stamp(cfg.OpensAtUnixNano) + " to " + stamp(cfg.ClosesAtUnixNano)
}

// applySetKey records the public half of the election key and the access policy of its fragments.
func applySetKey(s *applyState, c *fsmpb.Command, p *fsmpb.SetElectionKey) (*fsmpb.Response, error) {
	e, err := s.draftElection(c, p.ElectionId, "the election key")
	if err != nil {
		return nil, err
	}
	if bytes.Equal(e.ElectionPublicKey, p.PublicKey) && bytes.Equal(e.KeyPolicy, p.Policy) {
		return electionResponse(e), nil
	}
	e.ElectionPublicKey, e.KeyPolicy = p.PublicKey, p.Policy
	s.electionDirty = true
	if err := s.journal(c, JournalKeySet, nil, "election public key %x", shortDigest(p.PublicKey)); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// draftElection returns the election for a command that sealing freezes.
func (s *applyState) draftElection(c *fsmpb.Command, named, what string) (*fsmpb.ElectionState, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(named)
	if err != nil {
		return nil, err
	}
	return e, requireDraft(e, what)
}

func applyOpenElection(s *applyState, c *fsmpb.Command, p *fsmpb.Transition) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil || e.Phase == PhaseOpen {
		return electionOrError(e, err) // reopening an open election is a retry
	}
	if err := requireActor(e, c, "open the vote", ActorBureau); err != nil {
		return nil, err
	}
	if err := s.checkOpenable(e, c, p.BuildDigest); err != nil {
		return nil, err
	}
	e.Phase, e.OpenedAtUnixNano = PhaseOpen, c.StampedAtUnixNano
	s.electionDirty = true
	if err := s.journal(c, JournalOpened, nil, "opened with %d voters on the roll, the box empty", s.counters.Voters); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// checkOpenable runs the checks the decrees ask of the bureau at opening: the election is
// sealed (a test election may open from its draft), the seal still matches the state and the
// running build, the box and the émargement are empty, and the window has begun.
func (s *applyState) checkOpenable(e *fsmpb.ElectionState, c *fsmpb.Command, build []byte) error {
	allowed := []int32{PhaseSealed}
	if !rulesOf(e).legal {
		allowed = []int32{PhaseDraft, PhaseSealed}
	}
	if err := requirePhase(e, allowed...); err != nil {
		return err
	}
	if s.counters.Ballots != 0 || s.counters.Emargements != 0 || !isEmpty(s.tx.Bucket(bucketBox)) {
		return fmt.Errorf("%w: the box is not empty (%d ballots, %d émargements): the election cannot open",
			ErrRuleViolated, s.counters.Ballots, s.counters.Emargements)
	}
	if e.Seal != nil {
		if err := s.checkSealIntact(e, build); err != nil {
			return err
		}
	}
	return inWindow(e, c.StampedAtUnixNano)
}

func applyCloseElection(s *applyState, c *fsmpb.Command, p *fsmpb.Transition) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil || e.Phase == PhaseClosed {
		return electionOrError(e, err)
	}
	if err := requirePhase(e, PhaseOpen); err != nil {
		return nil, err
	}
	if err := requireActor(e, c, "close the vote", ActorBureau); err != nil {
		return nil, err
	}
	closes := e.GetConfig().GetClosesAtUnixNano()
	if rulesOf(e).legal && c.StampedAtUnixNano < closes {
		return nil, fmt.Errorf("%w: the vote closes at %s by itself; it may not close earlier", ErrRuleViolated, stamp(closes))
	}
	if err := s.closeElection(c, c.GetActor().GetPrincipal()); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// applyTick lets deadlines pass without a request: the leader proposes it, this applies it
// against the stamped time alone. It is never refused.
func applyTick(s *applyState, c *fsmpb.Command, _ *fsmpb.Tick) (*fsmpb.Response, error) {
	if err := s.sweepRetention(c); err != nil {
		return nil, err
	}
	e := s.election
	if c.StampedAtUnixNano <= 0 || e == nil || e.Phase != PhaseOpen {
		return &fsmpb.Response{}, nil
	}
	closes := e.GetConfig().GetClosesAtUnixNano()
	if closes == 0 || c.StampedAtUnixNano < closes {
		return &fsmpb.Response{}, nil
	}
	if err := s.closeElection(c, deadlineActor); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// purgeSessions drops every session, pending login and one-time code at the close: none
// serves any more, and a session's hash is what a cast command carried next to its ballot.
func (s *applyState) purgeSessions() error {
	if err := s.tx.DeleteBucket(bucketSessions); err != nil {
		return storageErr("purge sessions: %w", err)
	}
	if _, err := s.tx.CreateBucket(bucketSessions); err != nil {
		return storageErr("purge sessions: %w", err)
	}
	return nil
}

// closeElection freezes the box: no cast is accepted any more, and the Merkle root over its
// fingerprints is recorded.
func (s *applyState) closeElection(c *fsmpb.Command, by string) error {
	e := s.election
	root, err := s.boxRoot()
	if err != nil {
		return err
	}
	e.Phase, e.ClosedAtUnixNano, e.ClosedBy, e.BoxRoot = PhaseClosed, c.StampedAtUnixNano, by, root
	s.electionDirty = true
	if err := s.purgeSessions(); err != nil {
		return err
	}
	return s.journal(c, JournalClosed, nil, "closed by %s: %d ballots, %d émargements, box root %x",
		by, s.counters.Ballots, s.counters.Emargements, root)
}

func applyRecordTally(s *applyState, c *fsmpb.Command, p *fsmpb.RecordTally) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if e.Phase == PhaseTallied && bytes.Equal(e.ResultsDigest, p.ResultsDigest) && bytes.Equal(e.MinutesDigest, p.MinutesDigest) {
		return electionResponse(e), nil
	}
	if err := requirePhase(e, PhaseClosed); err != nil {
		return nil, err
	}
	if err := requireActor(e, c, "record the tally", ActorBureau); err != nil {
		return nil, err
	}
	e.Phase, e.TalliedAtUnixNano = PhaseTallied, c.StampedAtUnixNano
	e.ResultsDigest, e.MinutesDigest = p.ResultsDigest, p.MinutesDigest
	s.electionDirty = true
	if err := s.journal(c, JournalTallied, nil, "results %x, minutes %x", p.ResultsDigest, p.MinutesDigest); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

func applyArchive(s *applyState, c *fsmpb.Command, p *fsmpb.Transition) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil || e.Phase == PhaseArchived {
		return electionOrError(e, err)
	}
	allowed := []int32{PhaseTallied}
	if !rulesOf(e).legal {
		allowed = append(allowed, PhaseClosed)
	}
	if err := requirePhase(e, allowed...); err != nil {
		return nil, err
	}
	if err := requireActor(e, c, "archive the election", ActorBureau, ActorOrganizer); err != nil {
		return nil, err
	}
	e.Phase, e.ArchivedAtUnixNano, e.ArchiveDigest = PhaseArchived, c.StampedAtUnixNano, p.ArchiveDigest
	s.electionDirty = true
	if err := s.journal(c, JournalArchived, nil, "archived, archive manifest %x", p.ArchiveDigest); err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

// electionOrError answers a transition that has nothing to do: an error, or the election as it
// is (a retry of a transition already made).
func electionOrError(e *fsmpb.ElectionState, err error) (*fsmpb.Response, error) {
	if err != nil {
		return nil, err
	}
	return electionResponse(e), nil
}

func shortDigest(b []byte) []byte {
	d := digestOf(b)
	return d[:8]
}
