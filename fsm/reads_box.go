package fsm

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// BoxHeader describes the frozen box handed to the tally: what the close recorded, and the
// émargement entries per scrutin ("" in a test election) the count must match.
type BoxHeader struct {
	Election    *fsmpb.ElectionState
	Ballots     uint64
	Emargements map[string]uint64
}

// ExportBox calls header once, then ballot with every ballot of the box in fingerprint
// order, all in one read transaction. The box must be frozen: a closed, tallied or archived
// election; before that it answers ErrWrongPhase, so no ballot leaves while voting runs.
func (f *FSM) ExportBox(header func(BoxHeader) error, ballot func(fingerprint []byte, scrutinID string, inner []byte) error) error {
	return f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil {
			return err
		}
		if e == nil {
			return fmt.Errorf("%w: create the election first", ErrNoElection)
		}
		if err := requirePhase(e, PhaseClosed, PhaseTallied, PhaseArchived); err != nil {
			return err
		}
		h := BoxHeader{Election: e, Ballots: uint64(tx.Bucket(bucketBox).Stats().KeyN), Emargements: map[string]uint64{}}
		s := &applyState{tx: tx, sealer: f.sealer, election: e}
		scrutins, err := s.allScrutins()
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketVoters).ForEach(func(k, _ []byte) error {
			return s.emitEmargements(k, scrutins, func(en EmargementEntry) error {
				h.Emargements[en.ScrutinID]++
				return nil
			})
		})
		if err != nil {
			return err
		}
		if err := header(h); err != nil {
			return err
		}
		return forEachBallotTx(tx, f.sealer, rulesOf(e).legal, ballot)
	})
}
