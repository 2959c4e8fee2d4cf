package fsm

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// LoginInfo is what the node receiving a login needs to verify the secret itself.
type LoginInfo struct {
	SecretHash []byte
	Failures   uint32
	Locked     bool
}

// LookupLogin finds the voter an identifier belongs to. It returns ErrAuthFailed when no
// voter has it: the caller answers a wrong identifier like a wrong secret.
func (f *FSM) LookupLogin(identifier string) (*LoginInfo, error) {
	var info *LoginInfo
	err := f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e == nil {
			return err
		}
		s := &applyState{tx: tx, sealer: f.sealer, election: e}
		voterKey, ok, err := getOpened(tx, f.sealer, bucketLogins, s.loginKey(identifier))
		if err != nil || !ok {
			return err
		}
		v, _, err := s.voterRecord(voterKey)
		if err != nil {
			return err
		}
		acc, err := s.account(voterKey)
		if err != nil {
			return err
		}
		info = &LoginInfo{SecretHash: v.GetSecretHash(), Failures: acc.Failures, Locked: acc.Locked}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: look up login: %w", err)
	}
	if info == nil {
		return nil, fmt.Errorf("%w: no voter has this identifier", ErrAuthFailed)
	}
	return info, nil
}

// AccountStatus is an operator's view of a voter's authentication state.
type AccountStatus struct {
	HasIdentifier    bool
	Failures         uint32
	Locked           bool
	LockedAtUnixNano int64
}

// Account reads the authentication state of a voter.
func (f *FSM) Account(voterID string) (AccountStatus, error) {
	var st AccountStatus
	err := f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e == nil {
			return fmt.Errorf("%w: create the election first", ErrNoElection)
		}
		key := voterKey(e.IndexKey, voterID)
		if tx.Bucket(bucketVoters).Get(key) == nil {
			return fmt.Errorf("%w: the voter id is not on the roll", ErrUnknownVoter)
		}
		acc := &fsmpb.Account{}
		if _, err := getMessage(tx, f.sealer, bucketAccounts, key, acc); err != nil {
			return err
		}
		st = AccountStatus{HasIdentifier: len(acc.LoginKey) > 0, Failures: acc.Failures, Locked: acc.Locked, LockedAtUnixNano: acc.LockedAtUnixNano}
		return nil
	})
	return st, err
}

// EmargementEntry is one line of the émargement list: who voted in which scrutin, and when.
type EmargementEntry struct {
	VoterID     string
	Name        string
	DateOfBirth string
	ScrutinID   string
	EmargedAt   int64
}

// ForEachEmargement calls fn with every émargement, in roll (keyed hash) order, for the
// bureau's émargement list. It runs in one read transaction.
func (f *FSM) ForEachEmargement(fn func(EmargementEntry) error) error {
	return f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e == nil {
			return err
		}
		s := &applyState{tx: tx, sealer: f.sealer, election: e}
		scrutins, err := s.allScrutins()
		if err != nil {
			return err
		}
		return tx.Bucket(bucketVoters).ForEach(func(k, _ []byte) error {
			return s.emitEmargements(k, scrutins, fn)
		})
	})
}

func (s *applyState) emitEmargements(voterKey []byte, scrutins []*fsmpb.Scrutin, fn func(EmargementEntry) error) error {
	v, _, err := s.voterRecord(voterKey)
	if err != nil {
		return err
	}
	targets := []string{""}
	if rulesOf(s.election).legal {
		targets = targets[:0]
		for _, sc := range scrutins {
			if assigned(sc, v) {
				targets = append(targets, sc.ScrutinId)
			}
		}
	}
	for _, scrutinID := range targets {
		em := &fsmpb.EmargementRecord{}
		found, err := getMessage(s.tx, s.sealer, bucketEmargement, s.emargementKey(voterKey, scrutinID), em)
		if err != nil {
			return err
		}
		if found {
			entry := EmargementEntry{VoterID: v.VoterId, Name: v.Name, DateOfBirth: v.DateOfBirth, ScrutinID: scrutinID, EmargedAt: em.EmargedAtUnixNano}
			if err := fn(entry); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *applyState) allScrutins() ([]*fsmpb.Scrutin, error) {
	var out []*fsmpb.Scrutin
	err := s.tx.Bucket(bucketScrutins).ForEach(func(k, _ []byte) error {
		sc := &fsmpb.Scrutin{}
		if _, err := getMessage(s.tx, s.sealer, bucketScrutins, k, sc); err != nil {
			return err
		}
		out = append(out, sc)
		return nil
	})
	return out, err
}

// Scrutins returns every scrutin with its candidate lists, in id order.
func (f *FSM) Scrutins() ([]*fsmpb.Scrutin, map[string][]*fsmpb.CandidateList, error) {
	var scrutins []*fsmpb.Scrutin
	lists := map[string][]*fsmpb.CandidateList{}
	err := f.view(func(tx *bolt.Tx) error {
		s := &applyState{tx: tx, sealer: f.sealer}
		var err error
		if scrutins, err = s.allScrutins(); err != nil {
			return err
		}
		for _, sc := range scrutins {
			err := forEachListTx(tx, f.sealer, sc.ScrutinId, func(l *fsmpb.CandidateList) error {
				lists[sc.ScrutinId] = append(lists[sc.ScrutinId], l)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return scrutins, lists, err
}

// ForEachBallot calls fn with every ballot of the box in fingerprint order: its scrutin ("" in
// a test election) and the ballot as cast (the inner ballot in a legal election).
func (f *FSM) ForEachBallot(fn func(fingerprint []byte, scrutinID string, ballot []byte) error) error {
	return f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if err != nil || e == nil {
			return err
		}
		return forEachBallotTx(tx, f.sealer, rulesOf(e).legal, fn)
	})
}

func forEachBallotTx(tx *bolt.Tx, sealer Sealer, legal bool, fn func(fingerprint []byte, scrutinID string, ballot []byte) error) error {
	return tx.Bucket(bucketBox).ForEach(func(k, _ []byte) error {
		plain, _, err := getOpened(tx, sealer, bucketBox, k)
		if err != nil {
			return err
		}
		if !legal {
			return fn(k, "", plain)
		}
		entry := &fsmpb.BoxEntry{}
		if err := proto.Unmarshal(plain, entry); err != nil {
			return storageErr("decode box entry: %w", err)
		}
		return fn(k, entry.ScrutinId, entry.Ballot)
	})
}
