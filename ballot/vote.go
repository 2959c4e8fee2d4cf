package ballot

import (
	"bytes"
	"slices"
)

// Canonical vote layout (the plaintext of every inner ballot), padded to VoteSize so that the
// length of a ballot says nothing about the choice it holds:
//
//	version (1) = 1 | kind (1): 0 list vote, 1 blank
//	| scrutin length (1) | scrutin id | list length (1) | list id
//	| candidate count (1) | per candidate: length (1) | candidate id
//	| zero bytes up to VoteSize
//
// There is exactly one encoding of each vote: the decoder refuses non-zero padding, duplicate
// candidates and a blank vote that names a list.
const (
	// VoteSize is the size of every encoded vote.
	VoteSize = 1024
	// MaxIDLen bounds scrutin, list and candidate ids.
	MaxIDLen = 64
	// MaxCandidates bounds the candidates one vote may mark.
	MaxCandidates = 12

	voteVersion   = 1
	voteKindList  = 0
	voteKindBlank = 1
)

// Vote is what the voter chose in one scrutin: a list (and, where the scrutin's rule allows,
// marks on some of its candidates), or a blank vote.
type Vote struct {
	Scrutin string `json:"scrutin"`
	Blank   bool   `json:"blank,omitempty"`
	List    string `json:"list,omitempty"`
	// Candidates are candidate ids of List the voter marked (preferences or strike-outs,
	// as the scrutin's rule says); the count reports them per list.
	Candidates []string `json:"candidates,omitempty"`
}

// BlankVote is a blank vote in a scrutin.
func BlankVote(scrutin string) Vote { return Vote{Scrutin: scrutin, Blank: true} }

// Validate checks v against the limits of the canonical layout.
func (v Vote) Validate() error {
	if err := checkID("scrutin", v.Scrutin); err != nil {
		return err
	}
	if v.Blank {
		if v.List != "" || len(v.Candidates) > 0 {
			return errorf(ErrVoteFormat, "blank vote in scrutin %q names list %q or %d candidates", v.Scrutin, v.List, len(v.Candidates))
		}
		return nil
	}
	if err := checkID("list", v.List); err != nil {
		return err
	}
	return checkCandidates(v.Candidates)
}

func checkCandidates(ids []string) error {
	if len(ids) > MaxCandidates {
		return errorf(ErrVoteFormat, "vote marks %d candidates; at most %d fit a ballot", len(ids), MaxCandidates)
	}
	for i, id := range ids {
		if err := checkID("candidate", id); err != nil {
			return err
		}
		if slices.Contains(ids[:i], id) {
			return errorf(ErrVoteFormat, "vote marks candidate %q twice", id)
		}
	}
	return nil
}

// checkID accepts 1 to MaxIDLen characters among letters, digits and ._:@- : ids are keys of
// the election configuration, never free text.
func checkID(what, id string) error {
	if id == "" || len(id) > MaxIDLen {
		return errorf(ErrVoteFormat, "%s id %q must have 1 to %d characters", what, id, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return errorf(ErrVoteFormat, "%s id %q: character %q is not a letter, digit or one of ._:@-", what, id, id[i])
		}
	}
	return nil
}

func idChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
}

// EncodeVote returns the canonical VoteSize-byte encoding of v.
func EncodeVote(v Vote) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	kind := byte(voteKindList)
	if v.Blank {
		kind = voteKindBlank
	}
	b := make([]byte, 0, VoteSize)
	b = append(b, voteVersion, kind)
	b = appendID(b, v.Scrutin)
	b = appendID(b, v.List)
	b = append(b, byte(len(v.Candidates)))
	for _, c := range v.Candidates {
		b = appendID(b, c)
	}
	return b[:VoteSize], nil // capacity is VoteSize and the tail is already zero
}

func appendID(b []byte, id string) []byte {
	return append(append(b, byte(len(id))), id...)
}

// DecodeVote parses a canonical vote, refusing any other encoding of it.
func DecodeVote(b []byte) (Vote, error) {
	if len(b) != VoteSize {
		return Vote{}, errorf(ErrVoteFormat, "vote is %d bytes; every vote is %d", len(b), VoteSize)
	}
	if b[0] != voteVersion {
		return Vote{}, errorf(ErrVoteFormat, "vote has layout version %d; this build reads version %d", b[0], voteVersion)
	}
	if b[1] != voteKindList && b[1] != voteKindBlank {
		return Vote{}, errorf(ErrVoteFormat, "vote kind %d is neither a list vote (0) nor blank (1)", b[1])
	}
	r := voteReader{buf: b, off: 2, ok: true}
	v := Vote{Blank: b[1] == voteKindBlank}
	v.Scrutin = r.id()
	v.List = r.id()
	if n := r.byte(); n > 0 {
		v.Candidates = make([]string, 0, min(int(n), MaxCandidates+1))
		for i := 0; i < int(n) && r.ok; i++ {
			v.Candidates = append(v.Candidates, r.id())
		}
	}
	if !r.ok {
		return Vote{}, errorf(ErrVoteFormat, "vote fields run past the %d-byte vote", VoteSize)
	}
	if !allZero(b[r.off:]) {
		return Vote{}, errorf(ErrVoteFormat, "vote padding after byte %d is not zero", r.off)
	}
	if err := v.Validate(); err != nil {
		return Vote{}, err
	}
	return v, nil
}

// voteReader reads length-prefixed fields; ok turns false, for good, on the first overrun.
type voteReader struct {
	buf []byte
	off int
	ok  bool
}

func (r *voteReader) byte() byte {
	if r.off >= len(r.buf) {
		r.ok = false
		return 0
	}
	c := r.buf[r.off]
	r.off++
	return c
}

func (r *voteReader) id() string {
	n := int(r.byte())
	if !r.ok || r.off+n > len(r.buf) {
		r.ok = false
		return ""
	}
	s := string(r.buf[r.off : r.off+n])
	r.off += n
	return s
}

func allZero(b []byte) bool {
	return len(bytes.Trim(b, "\x00")) == 0
}
