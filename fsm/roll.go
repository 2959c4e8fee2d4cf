package fsm

import (
	"bytes"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// applyImportVoters adds or rectifies voters of the roll while the election is a draft. A
// changed record is a rectification and is journaled with the fields it changed. Two voters
// with the same name and date of birth are refused: the roll could not tell them apart.
func applyImportVoters(s *applyState, c *fsmpb.Command, p *fsmpb.ImportVoters) (*fsmpb.Response, error) {
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if err := requireDraft(e, "the voter roll"); err != nil {
		return nil, err
	}
	if err := checkRollForProfile(e, p); err != nil {
		return nil, err
	}
	if err := s.checkHomonyms(p.Voters); err != nil {
		return nil, err
	}
	result := &fsmpb.ImportResult{}
	for _, v := range p.Voters {
		if err := s.importVoter(c, v, result); err != nil {
			return nil, err
		}
	}
	result.TotalVoters = s.counters.Voters
	if result.Imported > 0 {
		err := s.journal(c, JournalRollImported, nil, "%d voters added, %d rectified, %d unchanged; %d on the roll",
			result.Imported-result.Rectified, result.Rectified, result.Unchanged, result.TotalVoters)
		if err != nil {
			return nil, err
		}
	}
	return &fsmpb.Response{Result: &fsmpb.Response_Import{Import: result}}, nil
}

// checkRollForProfile asks of a legal election's roll every field the authentication and the
// homonym check need.
func checkRollForProfile(e *fsmpb.ElectionState, p *fsmpb.ImportVoters) error {
	if !rulesOf(e).legal {
		return nil
	}
	for i, v := range p.Voters {
		var missing []string
		for _, f := range []struct{ name, value string }{
			{"name", v.Name}, {"email", v.Email}, {"date of birth", v.DateOfBirth}, {"secret", string(v.SecretHash)},
		} {
			if f.value == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: voter %d of the import (%q) lacks %s, which a %s election requires",
				ErrRuleViolated, i, v.VoterId, strings.Join(missing, ", "), profileName(e))
		}
	}
	return nil
}

func (s *applyState) importVoter(c *fsmpb.Command, v *fsmpb.VoterRecord, result *fsmpb.ImportResult) error {
	key := voterKeyWith(s.indexMAC(), v.VoterId)
	old, found, err := s.voterRecord(key)
	if err != nil {
		return err
	}
	if found && proto.Equal(old, v) {
		result.Unchanged++
		return nil
	}
	if err := s.putVoter(key, v); err != nil {
		return err
	}
	if err := s.moveHomonymKey(old, v, key); err != nil {
		return err
	}
	result.Imported++
	if !found {
		s.counters.Voters++
		s.countersDirty = true
		return nil
	}
	result.Rectified++
	return s.journal(c, JournalRollRectified, key, "rectified: %s", strings.Join(changedFields(old, v), ", "))
}

func (s *applyState) voterRecord(key []byte) (*fsmpb.VoterRecord, bool, error) {
	v := &fsmpb.VoterRecord{}
	found, err := getMessage(s.tx, s.sealer, bucketVoters, key, v)
	if !found {
		return nil, false, err
	}
	return v, true, nil
}

func (s *applyState) putVoter(key []byte, v *fsmpb.VoterRecord) error {
	return putMessage(s.tx, s.sealer, bucketVoters, key, v)
}

// changedFields names the fields a rectification changed; the secret is named, never shown.
func changedFields(old, v *fsmpb.VoterRecord) []string {
	var out []string
	for _, f := range []struct {
		name     string
		was, now string
	}{
		{"name", old.Name, v.Name}, {"email", old.Email, v.Email}, {"date of birth", old.DateOfBirth, v.DateOfBirth},
		{"secret", string(old.SecretHash), string(v.SecretHash)}, {"composante", old.Composante, v.Composante},
		{"collège", old.College, v.College}, {"secteur", old.Secteur, v.Secteur},
	} {
		if f.was != f.now {
			out = append(out, f.name)
		}
	}
	return out
}

// homonymKey is the keyed hash of a voter's normalized name and date of birth; voters without
// a date of birth (test elections) are not checked.
func (s *applyState) homonymKey(v *fsmpb.VoterRecord) []byte {
	if v == nil || v.DateOfBirth == "" {
		return nil
	}
	return keyedHash(s.indexMAC(), "homonym", []byte(normalizeName(v.Name)), []byte(v.DateOfBirth))
}

func normalizeName(name string) string {
	return strings.Join(strings.Fields(strings.ToLower(name)), " ")
}

// checkHomonyms refuses an import that would put two voters with the same name and date of
// birth on the roll, within the import or against the roll.
func (s *applyState) checkHomonyms(voters []*fsmpb.VoterRecord) error {
	seen := map[string]string{}
	for _, v := range voters {
		hk := s.homonymKey(v)
		if hk == nil {
			continue
		}
		if other, dup := seen[string(hk)]; dup && other != v.VoterId {
			return homonymError(v, other)
		}
		seen[string(hk)] = v.VoterId
		owner := s.tx.Bucket(bucketHomonyms).Get(hk)
		if owner == nil {
			continue
		}
		plain, _, err := getOpened(s.tx, s.sealer, bucketHomonyms, hk)
		if err != nil {
			return err
		}
		if !bytes.Equal(plain, voterKeyWith(s.indexMAC(), v.VoterId)) {
			return homonymError(v, "another voter already on the roll")
		}
	}
	return nil
}

func homonymError(v *fsmpb.VoterRecord, other string) error {
	return fmt.Errorf("%w: voter %q has the same name and date of birth (%s) as %q: the roll must tell homonyms apart",
		ErrRuleViolated, v.VoterId, v.DateOfBirth, other)
}

// moveHomonymKey keeps the homonym index in line with a voter's name and date of birth.
func (s *applyState) moveHomonymKey(old, v *fsmpb.VoterRecord, voterKey []byte) error {
	oldKey, newKey := s.homonymKey(old), s.homonymKey(v)
	if bytes.Equal(oldKey, newKey) {
		return nil
	}
	if oldKey != nil {
		if err := s.tx.Bucket(bucketHomonyms).Delete(oldKey); err != nil {
			return storageErr("delete homonym key: %w", err)
		}
	}
	if newKey == nil {
		return nil
	}
	return putSealed(s.tx, s.sealer, bucketHomonyms, newKey, bytes.Clone(voterKey))
}
