package tally

import (
	"crypto/ed25519"
	"iter"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/ceremony"
)

var testKDF = ceremony.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func bureau() []ceremony.Person {
	return []ceremony.Person{
		{Name: "president", Role: ceremony.RolePresident, FullName: "Claire Martin"},
		{Name: "deputy", Role: ceremony.RoleDeputy, FullName: "Paul Durand"},
		{Name: "secretary", Role: ceremony.RoleSecretary, FullName: "Inès Petit"},
		{Name: "delegate-a", Role: ceremony.RoleDelegate},
		{Name: "delegate-b", Role: ceremony.RoleDelegate},
		{Name: "delegate-c", Role: ceremony.RoleDelegate},
	}
}

func pass(name string) []byte { return []byte("passphrase of " + name + " for the tests") }

// electionSetup is a finished ceremony: public keys to seal ballots to, and what it takes to
// rebuild the private keys.
type electionSetup struct {
	policy *ceremony.Policy
	result *ceremony.Result
	pub    *ballot.ElectionPublicKey
}

func newSetup(t testing.TB) *electionSetup {
	t.Helper()
	policy, err := ceremony.ArretePolicy("president", "deputy", "delegate-a", "delegate-b", "delegate-c")
	if err != nil {
		t.Fatal(err)
	}
	passes := map[string][]byte{}
	for _, p := range bureau() {
		passes[p.Name] = pass(p.Name)
	}
	res, err := ceremony.Run(policy, bureau(), passes, ceremony.Options{ElectionID: "cnam-2026", Suites: []ballot.Suite{ballot.SuiteHPKE}, KDF: testKDF})
	if err != nil {
		t.Fatalf("ceremony: %v", err)
	}
	pubs, err := res.PublicKeys.ElectionPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &electionSetup{policy: policy, result: res, pub: pubs[0]}
}

// rebuild unlocks the fragments of the president and two delegates and rebuilds the keys.
func (s *electionSetup) rebuild(t testing.TB) *ceremony.PrivateKeys {
	t.Helper()
	var frags []*ceremony.Fragment
	for _, lf := range s.result.Fragments {
		if lf.Owner == "deputy" || lf.Owner == "delegate-c" {
			continue
		}
		f, err := lf.UnlockFragment(pass(lf.Owner))
		if err != nil {
			t.Fatal(err)
		}
		frags = append(frags, f)
	}
	keys, err := ceremony.Rebuild(s.policy, frags)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	return keys
}

func (s *electionSetup) signingKey(t testing.TB, member string) ed25519.PrivateKey {
	t.Helper()
	for _, lf := range s.result.SigningKeys {
		if lf.Owner == member {
			k, err := lf.UnlockSigningKey(pass(member))
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
	}
	t.Fatalf("no signing key for %s", member)
	return nil
}

func testElection() Election {
	return Election{ID: "cnam-2026", Name: "Élections professionnelles", Scrutins: []Scrutin{
		{ID: "cte", Name: "Comité technique", Lists: []List{
			{ID: "list-a", Name: "Liste A", Candidates: []string{"a1", "a2", "a3"}},
			{ID: "list-b", Name: "Liste B", Candidates: []string{"b1", "b2"}},
			{ID: "list-c", Name: "Liste C"},
		}},
		{ID: "cap", Name: "Commission administrative paritaire", Lists: []List{{ID: "list-x"}, {ID: "list-y"}}},
	}}
}

// generatedBox is a box of sealed ballots whose counts the test knows independently.
type generatedBox struct {
	ballots  [][]byte
	want     map[string]map[string]int // scrutin -> list (or "blank", "void") -> count
	marks    map[string]int            // "list/candidate" -> count
	rejected int
}

// generateBox seals n votes drawn from a fixed seed: list votes with candidate marks, blank
// votes, void votes (a list of another scrutin, a candidate of another list), and votes for a
// scrutin that does not exist.
func generateBox(t testing.TB, pub *ballot.ElectionPublicKey, n int) *generatedBox {
	t.Helper()
	rng := rand.New(rand.NewPCG(2026, 12))
	e := testElection()
	g := &generatedBox{want: map[string]map[string]int{}, marks: map[string]int{}}
	for range n {
		v, key := drawVote(rng, e)
		switch key {
		case "unknown":
			g.rejected++
		default:
			if g.want[v.Scrutin] == nil {
				g.want[v.Scrutin] = map[string]int{}
			}
			g.want[v.Scrutin][key]++
			if key != "blank" && key != "void" {
				for _, c := range v.Candidates {
					g.marks[v.List+"/"+c]++
				}
			}
		}
		inner, err := ballot.SealBallot(pub, v)
		if err != nil {
			t.Fatal(err)
		}
		g.ballots = append(g.ballots, inner)
	}
	return g
}

func drawVote(rng *rand.Rand, e Election) (ballot.Vote, string) {
	sc := e.Scrutins[rng.IntN(len(e.Scrutins))]
	switch r := rng.IntN(100); {
	case r < 5:
		return ballot.BlankVote(sc.ID), "blank"
	case r < 7:
		return ballot.Vote{Scrutin: sc.ID, List: "list-of-nowhere"}, "void"
	case r < 8:
		return ballot.Vote{Scrutin: sc.ID, List: sc.Lists[0].ID, Candidates: []string{"b9"}}, voidIfConstrained(sc.Lists[0])
	case r < 9:
		return ballot.Vote{Scrutin: "not-a-scrutin", List: "list-a"}, "unknown"
	}
	l := sc.Lists[rng.IntN(len(sc.Lists))]
	v := ballot.Vote{Scrutin: sc.ID, List: l.ID}
	for _, c := range l.Candidates {
		if rng.IntN(3) == 0 {
			v.Candidates = append(v.Candidates, c)
		}
	}
	return v, l.ID
}

// voidIfConstrained: marking an unknown candidate voids the vote only when the list names its
// candidates.
func voidIfConstrained(l List) string {
	if len(l.Candidates) > 0 {
		return "void"
	}
	return l.ID
}

func seq(ballots [][]byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, b := range ballots {
			if !yield(b, nil) {
				return
			}
		}
	}
}

func shuffled(ballots [][]byte, seed uint64) [][]byte {
	out := slices.Clone(ballots)
	rng := rand.New(rand.NewPCG(seed, seed))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
