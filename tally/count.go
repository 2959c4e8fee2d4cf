package tally

import (
	"bytes"
	"errors"
	"iter"
	"slices"
	"strings"

	"github.com/urne-vote/urne/ballot"
)

// BallotOpener decrypts inner ballots: the election keys rebuilt by the ceremony package.
type BallotOpener interface {
	OpenBallot(inner []byte) (ballot.Vote, error)
	Zero()
}

// Election describes what is counted. With no scrutins, every well-formed vote counts under
// the scrutin and list it names; with scrutins, a vote for an unknown scrutin is rejected and
// a vote for a list (or candidate) the scrutin does not have is void (nul).
type Election struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Scrutins []Scrutin `json:"scrutins,omitempty"`
}

// Scrutin is one ballot of the election (a college, a council) and its lists.
type Scrutin struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Lists []List `json:"lists"`
}

// List is a candidate list; Candidates, when given, are the ids a vote may mark.
type List struct {
	ID         string   `json:"id"`
	Name       string   `json:"name,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
}

// Result is the outcome of a count. It depends only on the set of ballots, the election and
// the émargement count, never on the order of the ballots or the time: re-running a count
// gives the same bytes.
type Result struct {
	ElectionID  string     `json:"election_id"`
	Ballots     int        `json:"ballots"`
	Emargements int        `json:"emargements"`
	BoxDigest   ballot.Hex `json:"box_digest"`
	// Rejected ballots could not be attributed to a scrutin (they do not decrypt, hold a
	// malformed vote, or name an unknown scrutin), sorted by fingerprint.
	Rejected []Rejected     `json:"rejected,omitempty"`
	Scrutins []ScrutinCount `json:"scrutins"`

	sorted [][]byte // the box's fingerprints in leaf order; published apart from the minutes
	votes  []ballot.Vote
}

// Fingerprints are the fingerprints of the counted box, sorted: the list published for voters
// to find their receipt in, and the leaves of BoxDigest. They are not part of the minutes'
// JSON, which would grow with the electorate.
func (r *Result) Fingerprints() [][]byte { return r.sorted }

// Votes are the decrypted ballots that a scrutin counted, sorted by scrutin, then blank, list
// and marks: the order of the box, of the casts and every fingerprint are gone, so the list
// (kept in the election's archive) links no vote to a receipt.
func (r *Result) Votes() []ballot.Vote { return r.votes }

// Rejected is a ballot of the box that no scrutin counts.
type Rejected struct {
	Fingerprint ballot.Hex `json:"fingerprint"`
	Reason      Reason     `json:"reason"`
	// Scrutin is the unknown scrutin a readable vote named (ReasonUnknownScrutin).
	Scrutin string `json:"scrutin,omitempty"`
}

// Reason says why a ballot was rejected.
type Reason string

// Reasons for rejecting a ballot of the box.
const (
	ReasonUndecryptable   Reason = "undecryptable"    // right size and key, but altered
	ReasonMalformedBallot Reason = "malformed-ballot" // wrong layout for its suite
	ReasonMalformedVote   Reason = "malformed-vote"   // decrypts to a non-canonical vote
	ReasonUnknownScrutin  Reason = "unknown-scrutin"  // names a scrutin the election lacks
)

// ScrutinCount is the count of one scrutin: votants = blank + void + expressed.
type ScrutinCount struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Ballots int    `json:"ballots"`
	// Emargements is the scrutin's émargement entries, when the box came with them per
	// scrutin (a tally from the cluster); CheckScrutins fills it in.
	Emargements *int        `json:"emargements,omitempty"`
	Blank       int         `json:"blank"`
	Void        int         `json:"void"`
	Expressed   int         `json:"expressed"`
	Lists       []ListCount `json:"lists"`
}

// ListCount is a list's votes and, when votes mark candidates, the marks per candidate.
type ListCount struct {
	ID    string      `json:"id"`
	Name  string      `json:"name,omitempty"`
	Votes int         `json:"votes"`
	Marks []MarkCount `json:"marks,omitempty"`
}

// MarkCount is how many votes for a list marked one of its candidates.
type MarkCount struct {
	Candidate string `json:"candidate"`
	Count     int    `json:"count"`
}

// Count decrypts every inner ballot with keys, counts them per scrutin and list, and checks
// that the box holds as many ballots as the émargement list has entries. It zeroes keys when
// it returns, whatever the outcome. On ErrMismatch it returns the result too, so the minutes
// can record the discrepancy.
func Count(keys BallotOpener, election Election, ballots iter.Seq2[[]byte, error], emargements int) (*Result, error) {
	defer keys.Zero()
	c := newCounter(election)
	for inner, err := range ballots {
		if err != nil {
			return nil, err
		}
		if err := c.add(keys, inner); err != nil {
			return nil, err
		}
	}
	res := c.result(election.ID, emargements)
	if res.Ballots != emargements {
		return res, errorf(ErrMismatch, "the box holds %d ballots but the émargement list has %d entries", res.Ballots, emargements)
	}
	return res, nil
}

type counter struct {
	election Election
	seen     map[string]bool
	fps      [][]byte
	votes    []ballot.Vote
	rejected []Rejected
	scrutins map[string]*scrutinTally
}

type scrutinTally struct {
	ballots, blank, void int
	votes                map[string]int
	marks                map[string]map[string]int
}

func newCounter(e Election) *counter {
	return &counter{election: e, seen: map[string]bool{}, scrutins: map[string]*scrutinTally{}}
}

func (c *counter) add(keys BallotOpener, inner []byte) error {
	fp := ballot.Fingerprint(inner)
	if c.seen[string(fp)] {
		return errorf(ErrDuplicate, "ballot %x appears twice in the box", fp)
	}
	c.seen[string(fp)] = true
	c.fps = append(c.fps, fp)
	vote, err := keys.OpenBallot(inner)
	switch {
	case errors.Is(err, ballot.ErrWrongKey) || errors.Is(err, ballot.ErrKeyFormat):
		return errorf(ErrKey, "ballot %x cannot be opened with the rebuilt keys: %v", fp, err)
	case err != nil:
		c.rejected = append(c.rejected, Rejected{Fingerprint: fp, Reason: rejectReason(err)})
		return nil
	}
	sc, ok := c.scrutin(vote.Scrutin)
	if !ok {
		c.rejected = append(c.rejected, Rejected{Fingerprint: fp, Reason: ReasonUnknownScrutin, Scrutin: vote.Scrutin})
		return nil
	}
	c.tally(sc, vote)
	return nil
}

func rejectReason(err error) Reason {
	switch {
	case errors.Is(err, ballot.ErrBallotOpen):
		return ReasonUndecryptable
	case errors.Is(err, ballot.ErrVoteFormat):
		return ReasonMalformedVote
	}
	return ReasonMalformedBallot
}

// scrutin finds (or, with no configured scrutins, creates) the tally of a scrutin.
func (c *counter) scrutin(id string) (*scrutinTally, bool) {
	if sc, ok := c.scrutins[id]; ok {
		return sc, true
	}
	if len(c.election.Scrutins) > 0 && c.config(id) == nil {
		return nil, false
	}
	sc := &scrutinTally{votes: map[string]int{}, marks: map[string]map[string]int{}}
	c.scrutins[id] = sc
	return sc, true
}

func (c *counter) config(id string) *Scrutin {
	for i := range c.election.Scrutins {
		if c.election.Scrutins[i].ID == id {
			return &c.election.Scrutins[i]
		}
	}
	return nil
}

func (c *counter) tally(sc *scrutinTally, v ballot.Vote) {
	c.votes = append(c.votes, v)
	sc.ballots++
	switch {
	case v.Blank:
		sc.blank++
	case !c.valid(v):
		sc.void++
	default:
		sc.votes[v.List]++
		for _, cand := range v.Candidates {
			if sc.marks[v.List] == nil {
				sc.marks[v.List] = map[string]int{}
			}
			sc.marks[v.List][cand]++
		}
	}
}

// valid reports whether a vote names a list of its scrutin and only candidates of that list.
func (c *counter) valid(v ballot.Vote) bool {
	cfg := c.config(v.Scrutin)
	if cfg == nil {
		return true // no configuration: every well-formed vote is valid
	}
	i := slices.IndexFunc(cfg.Lists, func(l List) bool { return l.ID == v.List })
	if i < 0 {
		return false
	}
	allowed := cfg.Lists[i].Candidates
	for _, cand := range v.Candidates {
		if len(allowed) > 0 && !slices.Contains(allowed, cand) {
			return false
		}
	}
	return true
}

func (c *counter) result(electionID string, emargements int) *Result {
	sorted := ballot.SortFingerprints(c.fps)
	res := &Result{ElectionID: electionID, Ballots: len(c.fps), Emargements: emargements, BoxDigest: ballot.MerkleRoot(sorted), sorted: sorted}
	slices.SortFunc(c.rejected, func(a, b Rejected) int { return bytes.Compare(a.Fingerprint, b.Fingerprint) })
	res.Rejected = c.rejected
	slices.SortFunc(c.votes, compareVotes)
	res.votes = c.votes
	for _, id := range c.scrutinOrder() {
		res.Scrutins = append(res.Scrutins, c.scrutinResult(id))
	}
	return res
}

func compareVotes(a, b ballot.Vote) int {
	if c := strings.Compare(a.Scrutin, b.Scrutin); c != 0 {
		return c
	}
	if a.Blank != b.Blank {
		if a.Blank {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a.List, b.List); c != 0 {
		return c
	}
	return slices.Compare(a.Candidates, b.Candidates)
}

// scrutinOrder is the configuration's order, or sorted ids when there is no configuration.
func (c *counter) scrutinOrder() []string {
	if len(c.election.Scrutins) > 0 {
		ids := make([]string, len(c.election.Scrutins))
		for i, s := range c.election.Scrutins {
			ids[i] = s.ID
		}
		return ids
	}
	return sortedKeys(c.scrutins)
}

func (c *counter) scrutinResult(id string) ScrutinCount {
	sc := c.scrutins[id]
	if sc == nil {
		sc = &scrutinTally{votes: map[string]int{}, marks: map[string]map[string]int{}}
	}
	out := ScrutinCount{ID: id, Ballots: sc.ballots, Blank: sc.blank, Void: sc.void, Expressed: sc.ballots - sc.blank - sc.void}
	names := map[string]string{}
	listIDs := sortedKeys(sc.votes)
	if cfg := c.config(id); cfg != nil {
		out.Name = cfg.Name
		listIDs = nil
		for _, l := range cfg.Lists {
			listIDs = append(listIDs, l.ID)
			names[l.ID] = l.Name
		}
	}
	for _, l := range listIDs {
		out.Lists = append(out.Lists, ListCount{ID: l, Name: names[l], Votes: sc.votes[l], Marks: markCounts(sc.marks[l])})
	}
	return out
}

func markCounts(m map[string]int) []MarkCount {
	var out []MarkCount
	for _, cand := range sortedKeys(m) {
		out = append(out, MarkCount{Candidate: cand, Count: m[cand]})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
