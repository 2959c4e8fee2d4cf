package fsm

import (
	"errors"
	"testing"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

func candidates(sexes string) []*fsmpb.Candidate {
	out := make([]*fsmpb.Candidate, len(sexes))
	for i, s := range sexes {
		out[i] = &fsmpb.Candidate{Name: "C" + string(rune('a'+i)), Sex: string(s), DateOfBirth: "1980-01-01"}
	}
	return out
}

func TestCandidateListRules(t *testing.T) {
	balanced := &fsmpb.ListRule{GenderBalance: true, WomenSharePermille: 600}
	alternate := &fsmpb.ListRule{Alternate: true}
	short := &fsmpb.ListRule{MaxCandidates: 3}
	cases := []struct {
		name  string
		rule  *fsmpb.ListRule
		sexes string
		want  error
		msg   string
	}{
		// 60% women: 5 candidates need exactly 3 women; 4 candidates 2 or 3.
		{"balanced 3 of 5", balanced, "FMFMF", nil, ""},
		{"2 of 5 women", balanced, "FMFMM", ErrRuleViolated, "has 2 women among 5 candidates; with 60.0% women in the electorate it needs 3 to 3"},
		{"4 candidates, 2 women (floor)", balanced, "FMFM", nil, ""},
		{"4 candidates, 3 women (ceiling)", balanced, "FMFF", nil, ""},
		{"4 candidates, 4 women", balanced, "FFFF", ErrRuleViolated, "needs 2 to 3"},
		{"no rule, one sex", &fsmpb.ListRule{}, "MMMM", nil, ""},
		{"alternating", alternate, "MFMF", nil, ""},
		{"alternating until women run out", alternate, "FMFMMM", nil, ""},
		{"two men then a woman", alternate, "FMMF", ErrRuleViolated, "does not alternate"},
		{"too long", short, "FMFM", ErrRuleViolated, "has 4 candidates, the scrutin allows 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
			h.mustApply(typeScrutin, &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "s", Name: "S", ListRule: tc.rule}})
			list := &fsmpb.PutCandidateList{List: &fsmpb.CandidateList{ScrutinId: "s", ListId: "L", Name: "L", Candidates: candidates(tc.sexes)}}
			if tc.want == nil {
				h.mustApply(typeList, list)
				return
			}
			wantMessage(t, h.refusedLeavesNoTrace(typeList, list, tc.want), tc.msg)
		})
	}
}

func TestListNeedsItsScrutinAndKeepsTheRule(t *testing.T) {
	h := newHarness(t)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID})
	list := &fsmpb.PutCandidateList{List: &fsmpb.CandidateList{ScrutinId: "s", ListId: "L", Name: "L", Candidates: candidates("MMF")}}
	wantMessage(t, h.refusedLeavesNoTrace(typeList, list, ErrNotFound), `scrutin "s" does not exist`)
	h.mustApply(typeScrutin, &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "s", Name: "S"}})
	h.mustApply(typeList, list)
	// Tightening the rule of a scrutin whose filed list breaks it is refused.
	strict := &fsmpb.PutScrutin{Scrutin: &fsmpb.Scrutin{ScrutinId: "s", Name: "S", ListRule: &fsmpb.ListRule{Alternate: true}}}
	wantMessage(t, h.refusedLeavesNoTrace(typeScrutin, strict, ErrRuleViolated), "does not alternate")
	scrutins, lists, err := h.f.Scrutins()
	if err != nil || len(scrutins) != 1 || len(lists["s"]) != 1 || len(lists["s"][0].Candidates) != 3 {
		t.Fatalf("Scrutins() = %v, %v, %v", scrutins, lists, err)
	}
}

func TestCandidateValidation(t *testing.T) {
	for name, c := range map[string]*fsmpb.Candidate{
		"no sex":        {Name: "X", DateOfBirth: "1980-01-01"},
		"other sex":     {Name: "X", Sex: "X", DateOfBirth: "1980-01-01"},
		"bad date":      {Name: "X", Sex: "F", DateOfBirth: "1980-02-30"},
		"no name":       {Sex: "F", DateOfBirth: "1980-01-01"},
		"date too old":  {Name: "X", Sex: "F", DateOfBirth: "1850-01-01"},
		"not iso order": {Name: "X", Sex: "F", DateOfBirth: "01/02/1980"},
	} {
		if err := checkCandidate(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestAwardTiedSeatGoesToVotesThenAge(t *testing.T) {
	older := &fsmpb.Candidate{Name: "old", Sex: "F", DateOfBirth: "1960-03-01"}
	younger := &fsmpb.Candidate{Name: "young", Sex: "M", DateOfBirth: "1990-03-01"}
	cases := []struct {
		name string
		tied []TiedList
		want string
		err  error
	}{
		{"more votes wins", []TiedList{{"A", 10, older}, {"B", 11, younger}}, "B", nil},
		{"same votes: older candidate", []TiedList{{"A", 10, younger}, {"B", 10, older}}, "B", nil},
		{"same votes, same birthday", []TiedList{{"A", 10, older}, {"B", 10, older}}, "", ErrDrawNeeded},
		{"nothing", nil, "", ErrInvalid},
	}
	for _, tc := range cases {
		got, err := AwardTiedSeat(tc.tied)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestAssignment(t *testing.T) {
	sc := &fsmpb.Scrutin{Composantes: []string{"IUT"}, Colleges: []string{"A", "B"}}
	cases := []struct {
		v    *fsmpb.VoterRecord
		want bool
	}{
		{&fsmpb.VoterRecord{Composante: "IUT", College: "A"}, true},
		{&fsmpb.VoterRecord{Composante: "IUT", College: "C"}, false},
		{&fsmpb.VoterRecord{Composante: "Lettres", College: "A"}, false},
		{&fsmpb.VoterRecord{Composante: "IUT", College: "B", Secteur: "any"}, true},
	}
	for i, tc := range cases {
		if got := assigned(sc, tc.v); got != tc.want {
			t.Errorf("case %d: assigned = %v", i, got)
		}
	}
	if !assigned(&fsmpb.Scrutin{}, &fsmpb.VoterRecord{}) {
		t.Error("a scrutin without criteria must take every voter")
	}
}
