package fsm

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// listSeparator joins a scrutin id and a list id in the key of a list: identifiers are
// printable, so the key is unambiguous and lists sort by scrutin.
const listSeparator = 0x00

func listKey(scrutinID, listID string) []byte {
	return append(append([]byte(scrutinID), listSeparator), listID...)
}

// applyPutScrutin adds or replaces a scrutin while the election is a draft. Lists already
// filed must still satisfy the scrutin's rule.
func applyPutScrutin(s *applyState, c *fsmpb.Command, p *fsmpb.PutScrutin) (*fsmpb.Response, error) {
	if _, err := s.draftElection(c, p.ElectionId, "the scrutins"); err != nil {
		return nil, err
	}
	sc := p.Scrutin
	old := &fsmpb.Scrutin{}
	found, err := getMessage(s.tx, s.sealer, bucketScrutins, []byte(sc.ScrutinId), old)
	if err != nil || (found && proto.Equal(old, sc)) {
		return electionOrError(s.election, err)
	}
	err = s.forEachList(sc.ScrutinId, func(l *fsmpb.CandidateList) error { return checkListRule(sc.ListRule, l) })
	if err != nil {
		return nil, err
	}
	if err := putMessage(s.tx, s.sealer, bucketScrutins, []byte(sc.ScrutinId), sc); err != nil {
		return nil, err
	}
	if err := s.journal(c, JournalScrutinPut, nil, "scrutin %q (%s), %d seats", sc.ScrutinId, sc.Name, sc.Seats); err != nil {
		return nil, err
	}
	return electionResponse(s.election), nil
}

// applyPutList files or replaces a candidate list of an existing scrutin, checked against the
// scrutin's rule (gender balance, alternation, length).
func applyPutList(s *applyState, c *fsmpb.Command, p *fsmpb.PutCandidateList) (*fsmpb.Response, error) {
	if _, err := s.draftElection(c, p.ElectionId, "the candidate lists"); err != nil {
		return nil, err
	}
	l := p.List
	sc, err := s.scrutin(l.ScrutinId)
	if err != nil {
		return nil, err
	}
	if err := checkListRule(sc.ListRule, l); err != nil {
		return nil, err
	}
	key := listKey(l.ScrutinId, l.ListId)
	old := &fsmpb.CandidateList{}
	found, err := getMessage(s.tx, s.sealer, bucketLists, key, old)
	if err != nil || (found && proto.Equal(old, l)) {
		return electionOrError(s.election, err)
	}
	if err := putMessage(s.tx, s.sealer, bucketLists, key, l); err != nil {
		return nil, err
	}
	if err := s.journal(c, JournalListPut, nil, "list %q (%s) in scrutin %q, %d candidates", l.ListId, l.Name, l.ScrutinId, len(l.Candidates)); err != nil {
		return nil, err
	}
	return electionResponse(s.election), nil
}

func (s *applyState) scrutin(id string) (*fsmpb.Scrutin, error) {
	sc := &fsmpb.Scrutin{}
	found, err := getMessage(s.tx, s.sealer, bucketScrutins, []byte(id), sc)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: scrutin %q does not exist in election %q", ErrNotFound, id, s.election.ElectionId)
	}
	return sc, nil
}

// forEachList calls fn with every list of a scrutin.
func (s *applyState) forEachList(scrutinID string, fn func(*fsmpb.CandidateList) error) error {
	return forEachListTx(s.tx, s.sealer, scrutinID, fn)
}

func forEachListTx(tx *bolt.Tx, sealer Sealer, scrutinID string, fn func(*fsmpb.CandidateList) error) error {
	prefix := listKey(scrutinID, "")
	cur := tx.Bucket(bucketLists).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		l := &fsmpb.CandidateList{}
		if _, err := getMessage(tx, sealer, bucketLists, k, l); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// scrutinsWithoutList names the scrutins that have no candidate list, or "" if none.
func (s *applyState) scrutinsWithoutList() (string, error) {
	var empty []string
	err := s.tx.Bucket(bucketScrutins).ForEach(func(k, _ []byte) error {
		prefix := listKey(string(k), "")
		if key, _ := s.tx.Bucket(bucketLists).Cursor().Seek(prefix); key == nil || !bytes.HasPrefix(key, prefix) {
			empty = append(empty, string(k))
		}
		return nil
	})
	if err != nil || len(empty) == 0 {
		return "", err
	}
	return fmt.Sprintf(" (none in %s)", strings.Join(empty, ", ")), nil
}

// checkListRule applies a scrutin's rule to a list: length, balance between women and men in
// the proportion of the electorate (rounded either way), and alternation from the top.
func checkListRule(rule *fsmpb.ListRule, l *fsmpb.CandidateList) error {
	n := len(l.Candidates)
	if max := rule.GetMaxCandidates(); max > 0 && n > int(max) {
		return fmt.Errorf("%w: list %q has %d candidates, the scrutin allows %d", ErrRuleViolated, l.ListId, n, max)
	}
	women := 0
	for _, c := range l.Candidates {
		if c.Sex == SexFemale {
			women++
		}
	}
	if rule.GetGenderBalance() {
		share := int(rule.GetWomenSharePermille())
		low, high := n*share/1000, (n*share+999)/1000
		if women < low || women > high {
			return fmt.Errorf("%w: list %q has %d women among %d candidates; with %d.%d%% women in the electorate it needs %d to %d",
				ErrRuleViolated, l.ListId, women, n, share/10, share%10, low, high)
		}
	}
	if rule.GetAlternate() {
		return checkAlternation(l)
	}
	return nil
}

// checkAlternation: sexes alternate from the top; once two candidates in a row share a sex,
// the other sex must have run out.
func checkAlternation(l *fsmpb.CandidateList) error {
	for i := 1; i < len(l.Candidates); i++ {
		if l.Candidates[i].Sex != l.Candidates[i-1].Sex {
			continue
		}
		for j := i + 1; j < len(l.Candidates); j++ {
			if l.Candidates[j].Sex != l.Candidates[i].Sex {
				return fmt.Errorf("%w: list %q does not alternate women and men: candidates %d and %d are both %s while candidate %d is not",
					ErrRuleViolated, l.ListId, i, i+1, l.Candidates[i].Sex, j+1)
			}
		}
		return nil
	}
	return nil
}

// assigned tells whether a voter votes in a scrutin: every criterion the scrutin sets
// (composante, collège, secteur) matches the voter's; an empty criterion matches everyone.
func assigned(sc *fsmpb.Scrutin, v *fsmpb.VoterRecord) bool {
	matches := func(allowed []string, value string) bool { return len(allowed) == 0 || slices.Contains(allowed, value) }
	return matches(sc.Composantes, v.Composante) && matches(sc.Colleges, v.College) && matches(sc.Secteurs, v.Secteur)
}

// TiedList is a list in a tie for a seat: its votes and the candidate it would seat.
type TiedList struct {
	ListID    string
	Votes     uint64
	Candidate *fsmpb.Candidate
}

// ErrDrawNeeded: lists tie on votes and their candidates were born the same day.
var ErrDrawNeeded = errors.New("tie not resolved by votes or age")

// AwardTiedSeat resolves a tie for a seat: the list with the most votes, then the list whose
// candidate is the oldest. Dates are YYYY-MM-DD, so they compare as strings.
func AwardTiedSeat(tied []TiedList) (string, error) {
	if len(tied) == 0 {
		return "", fmt.Errorf("%w: no list in the tie", ErrInvalid)
	}
	best := slices.MaxFunc(tied, func(a, b TiedList) int {
		if a.Votes != b.Votes {
			return cmp.Compare(a.Votes, b.Votes)
		}
		return strings.Compare(b.Candidate.GetDateOfBirth(), a.Candidate.GetDateOfBirth())
	})
	for _, t := range tied {
		if t.ListID != best.ListID && t.Votes == best.Votes && t.Candidate.GetDateOfBirth() == best.Candidate.GetDateOfBirth() {
			return "", fmt.Errorf("%w: lists %q and %q have %d votes each and candidates born on %s",
				ErrDrawNeeded, best.ListID, t.ListID, t.Votes, t.Candidate.GetDateOfBirth())
		}
	}
	return best.ListID, nil
}
