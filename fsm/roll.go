package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"strings"

	bolt "go.etcd.io/bbolt"
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
	for _, b := range [][]byte{bucketVoters, bucketHomonyms} {
		s.tx.Bucket(b).FillPercent = rollFillPercent
	}
	keys := make([]rollKeys, len(p.Voters))
	for i, v := range p.Voters {
		keys[i] = rollKeys{voter: voterKeyWith(s.indexMAC(), v.VoterId), homonym: s.homonymKey(v)}
	}
	if err := s.checkHomonyms(p.Voters, keys); err != nil {
		return nil, err
	}
	claimed, err := s.claimHomonyms(p.Claims)
	if err != nil {
		return nil, err
	}
	result := &fsmpb.ImportResult{Claimed: claimed}
	for i, v := range p.Voters {
		if err := s.importVoter(c, v, keys[i], result); err != nil {
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

// rollFillPercent is how full bbolt leaves the pages it splits in the roll's trees. Only imports
// write them, and the node proposes each import in key order (node/DESIGN.md), so a split page
// is not written again by the same import: at bbolt's default of half, a roll imported in
// order would fill its pages by half and take twice the pages it needs. A tenth is left for a
// rectification that grows a record.
const rollFillPercent = 0.9

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

// rollKeys are the keys of a voter of an import, computed once.
type rollKeys struct {
	voter, homonym []byte
	held           bool // the homonym key already points to the voter
}

func (s *applyState) importVoter(c *fsmpb.Command, v *fsmpb.VoterRecord, keys rollKeys, result *fsmpb.ImportResult) error {
	key := keys.voter
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
	if err := s.moveHomonymKey(old, keys); err != nil {
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
	return homonymKeyWith(s.indexMAC(), v)
}

func homonymKeyWith(mac hash.Hash, v *fsmpb.VoterRecord) []byte {
	if v == nil || v.DateOfBirth == "" {
		return nil
	}
	return keyedHash(mac, "homonym", []byte(normalizeName(v.Name)), []byte(v.DateOfBirth))
}

func normalizeName(name string) string {
	return strings.Join(strings.Fields(strings.ToLower(name)), " ")
}

// The homonyms bucket maps each homonym key to the voter key of its holder. A key is held
// by the voter it points to only while that voter is on the roll under the name and date of
// birth it hashes; otherwise it is stale (a claim whose voters were never imported, or one a
// node computed wrongly) and gives way to the next voter or claim. So a claim can slow an
// import down, never let two homonyms onto the roll nor keep a voter off it.

// homonymHolder tells whether the homonym key already points to the voter key (mine), or is
// held by another voter (taken).
func (s *applyState) homonymHolder(hk, key []byte) (mine, taken bool, err error) {
	owner, found, err := getOpened(s.tx, s.sealer, bucketHomonyms, hk)
	if !found || err != nil {
		return false, false, err
	}
	if bytes.Equal(owner, key) {
		return true, false, nil
	}
	v, found, err := s.voterRecord(owner)
	return false, found && bytes.Equal(s.homonymKey(v), hk), err
}

// checkHomonyms refuses an import that would put two voters with the same name and date of
// birth on the roll, within the import or against the roll. It marks the homonym keys that
// already point to their voter, which the import need not write again.
func (s *applyState) checkHomonyms(voters []*fsmpb.VoterRecord, keys []rollKeys) error {
	seen := map[string]string{}
	for i, v := range voters {
		hk := keys[i].homonym
		if hk == nil {
			continue
		}
		if other, dup := seen[string(hk)]; dup && other != v.VoterId {
			return homonymError(v.VoterId, v.DateOfBirth, other)
		}
		seen[string(hk)] = v.VoterId
		mine, taken, err := s.homonymHolder(hk, keys[i].voter)
		if err != nil {
			return err
		}
		if taken {
			return homonymError(v.VoterId, v.DateOfBirth, "another voter already on the roll")
		}
		keys[i].held = mine
	}
	return nil
}

// claimHomonyms points each claimed key to its voter, unless it already does, and returns how
// many it pointed. It refuses claims of one key for two voters, or of a key another voter
// holds, before writing any.
func (s *applyState) claimHomonyms(claims []*fsmpb.HomonymClaim) (uint64, error) {
	seen := map[string]string{}
	var write [][2][]byte
	for _, c := range claims {
		if other, dup := seen[string(c.Key)]; dup && other != c.VoterId {
			return 0, homonymError(c.VoterId, "", other)
		}
		seen[string(c.Key)] = c.VoterId
		key := voterKeyWith(s.indexMAC(), c.VoterId)
		mine, taken, err := s.homonymHolder(c.Key, key)
		if err != nil {
			return 0, err
		}
		if taken {
			return 0, homonymError(c.VoterId, "", "another voter already on the roll")
		}
		if !mine {
			write = append(write, [2][]byte{c.Key, key})
		}
	}
	for _, w := range write {
		if err := putSealed(s.tx, s.sealer, bucketHomonyms, w[0], w[1]); err != nil {
			return 0, err
		}
	}
	return uint64(len(write)), nil
}

// HomonymError is the refusal of a roll that holds two voters with the same name and date
// of birth.
func HomonymError(voterID, other string) error { return homonymError(voterID, "", other) }

func homonymError(voterID, birth, other string) error {
	if birth != "" {
		birth = " (" + birth + ")"
	}
	return fmt.Errorf("%w: voter %q has the same name and date of birth%s as %q: the roll must tell homonyms apart",
		ErrRuleViolated, voterID, birth, other)
}

// moveHomonymKey keeps the homonym index in line with a voter's name and date of birth.
func (s *applyState) moveHomonymKey(old *fsmpb.VoterRecord, keys rollKeys) error {
	oldKey, newKey := s.homonymKey(old), keys.homonym
	if bytes.Equal(oldKey, newKey) {
		return nil
	}
	if oldKey != nil {
		if err := s.tx.Bucket(bucketHomonyms).Delete(oldKey); err != nil {
			return storageErr("delete homonym key: %w", err)
		}
	}
	if newKey == nil || keys.held {
		return nil
	}
	return putSealed(s.tx, s.sealer, bucketHomonyms, newKey, keys.voter)
}

// RollIndex computes the keys under which the current election files its voters and their
// homonym keys. A node that received a whole roll sorts it by them before proposing it, so
// that each tree is written in order (see HomonymClaim); the state machine computes them
// again and trusts none. It is not safe for concurrent use.
type RollIndex struct{ mac hash.Hash }

// RollIndex returns the index of the current election; ErrNoElection if none.
func (f *FSM) RollIndex() (*RollIndex, error) {
	var key []byte
	err := f.view(func(tx *bolt.Tx) error {
		e, err := readElection(tx, f.sealer)
		if e != nil {
			key = bytes.Clone(e.IndexKey)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("fsm: %w", ErrNoElection)
	}
	return NewRollIndex(key), nil
}

// NewRollIndex is the index of an election whose index key is key.
func NewRollIndex(key []byte) *RollIndex { return &RollIndex{mac: hmac.New(sha256.New, key)} }

// VoterKey is the key of the voter's record.
func (r *RollIndex) VoterKey(voterID string) []byte { return voterKeyWith(r.mac, voterID) }

// HomonymKey is the voter's homonym key, nil for a voter without a date of birth.
func (r *RollIndex) HomonymKey(v *fsmpb.VoterRecord) []byte { return homonymKeyWith(r.mac, v) }
