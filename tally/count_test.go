package tally

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/urne-vote/urne/ballot"
)

const boxSize = 1000

func TestCountGeneratedElection(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, boxSize-1)
	inner, err := ballot.SealBallot(s.pub, ballot.Vote{Scrutin: "cte", List: "list-a"})
	if err != nil {
		t.Fatal(err)
	}
	inner[len(inner)-20] ^= 1 // a ballot of the right size that does not decrypt
	ballots := append(box.ballots, inner)
	keys := s.rebuild(t)
	res, err := Count(keys, testElection(), seq(ballots), boxSize)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	if res.Ballots != boxSize || res.Emargements != boxSize {
		t.Fatalf("counted %d ballots, %d émargements", res.Ballots, res.Emargements)
	}
	if len(res.Rejected) != box.rejected+1 {
		t.Fatalf("%d rejected ballots, want %d", len(res.Rejected), box.rejected+1)
	}
	fps := make([][]byte, len(ballots))
	for i, b := range ballots {
		fps[i] = ballot.Fingerprint(b)
	}
	if !bytes.Equal(res.BoxDigest, ballot.MerkleRoot(fps)) {
		t.Fatal("box digest is not the Merkle root of the ballots")
	}
	checkScrutins(t, res, box)
	if _, err := keys.OpenBallot(ballots[0]); err == nil {
		t.Fatal("Count did not zero the keys")
	}
}

func checkScrutins(t *testing.T, res *Result, box *generatedBox) {
	t.Helper()
	if len(res.Scrutins) != 2 || res.Scrutins[0].ID != "cte" || res.Scrutins[1].ID != "cap" {
		t.Fatalf("scrutins %+v, want cte then cap (configuration order)", res.Scrutins)
	}
	total, marks, wantMarks := 0, 0, 0
	for _, n := range box.marks {
		wantMarks += n
	}
	for _, sc := range res.Scrutins {
		want := box.want[sc.ID]
		if sc.Blank != want["blank"] || sc.Void != want["void"] {
			t.Fatalf("%s: blank %d void %d, want %d %d", sc.ID, sc.Blank, sc.Void, want["blank"], want["void"])
		}
		sum := sc.Blank + sc.Void
		for _, l := range sc.Lists {
			if l.Votes != want[l.ID] {
				t.Fatalf("%s/%s: %d votes, want %d", sc.ID, l.ID, l.Votes, want[l.ID])
			}
			sum += l.Votes
			for _, m := range l.Marks {
				marks += m.Count
				if m.Count != box.marks[l.ID+"/"+m.Candidate] {
					t.Fatalf("%s/%s: candidate %s marked %d times, want %d", sc.ID, l.ID, m.Candidate, m.Count, box.marks[l.ID+"/"+m.Candidate])
				}
			}
		}
		if sum != sc.Ballots || sc.Expressed != sc.Ballots-sc.Blank-sc.Void {
			t.Fatalf("%s: votants %d, exprimés %d do not add up", sc.ID, sc.Ballots, sc.Expressed)
		}
		total += sc.Ballots
	}
	if marks != wantMarks || wantMarks == 0 {
		t.Fatalf("%d candidate marks counted, want %d", marks, wantMarks)
	}
	if total+len(res.Rejected) != res.Ballots {
		t.Fatalf("scrutins count %d ballots and %d are rejected, the box holds %d", total, len(res.Rejected), res.Ballots)
	}
}

// A count re-run with keys rebuilt again, over the ballots in another order, gives the same
// result byte for byte.
func TestCountRerunIdentical(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, 300)
	var outputs [][]byte
	for seed := range uint64(3) {
		res, err := Count(s.rebuild(t), testElection(), seq(shuffled(box.ballots, seed)), 300)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(res)
		votes, _ := json.Marshal(res.Votes())
		if n := len(res.Votes()); n != 300-len(res.Rejected) {
			t.Fatalf("%d decrypted votes for 300 ballots and %d rejected", n, len(res.Rejected))
		}
		// The decrypted ballots come out in the same order whatever the box's order.
		outputs = append(outputs, append(js, votes...))
	}
	for i := 1; i < len(outputs); i++ {
		if !bytes.Equal(outputs[0], outputs[i]) {
			t.Fatalf("run %d differs:\n%s\n%s", i, outputs[0], outputs[i])
		}
	}
}

func TestCountDetectsMismatch(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, 50)
	for _, emargements := range []int{49, 51} {
		res, err := Count(s.rebuild(t), testElection(), seq(box.ballots), emargements)
		if !errors.Is(err, ErrMismatch) {
			t.Fatalf("50 ballots, %d émargements: %v, want ErrMismatch", emargements, err)
		}
		if res == nil || res.Ballots != 50 || len(Anomalies(res)) == 0 {
			t.Fatalf("mismatch must still return the result with its anomaly: %+v", res)
		}
	}
}

func TestCountRefusesDuplicateAndForeignBallots(t *testing.T) {
	s := newSetup(t)
	box := generateBox(t, s.pub, 10)
	dup := append(box.ballots, box.ballots[3])
	if _, err := Count(s.rebuild(t), testElection(), seq(dup), len(dup)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate ballot: %v", err)
	}
	other := newSetup(t)
	foreign := append(box.ballots, generateBox(t, other.pub, 1).ballots...)
	if _, err := Count(s.rebuild(t), testElection(), seq(foreign), len(foreign)); !errors.Is(err, ErrKey) {
		t.Fatalf("ballot of another election key: %v", err)
	}
}

func TestCountWithoutConfiguration(t *testing.T) {
	s := newSetup(t)
	votes := []ballot.Vote{
		{Scrutin: "s2", List: "b"}, {Scrutin: "s1", List: "a", Candidates: []string{"x"}},
		{Scrutin: "s1", List: "a"}, ballot.BlankVote("s1"),
	}
	var ballots [][]byte
	for _, v := range votes {
		inner, _ := ballot.SealBallot(s.pub, v)
		ballots = append(ballots, inner)
	}
	res, err := Count(s.rebuild(t), Election{ID: "e"}, seq(ballots), len(ballots))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(res.Scrutins)
	want := `[{"id":"s1","ballots":3,"blank":1,"void":0,"expressed":2,"lists":[{"id":"a","votes":2,"marks":[{"candidate":"x","count":1}]}]},` +
		`{"id":"s2","ballots":1,"blank":0,"void":0,"expressed":1,"lists":[{"id":"b","votes":1}]}]`
	if string(got) != want {
		t.Fatalf("scrutins:\n%s\nwant\n%s", got, want)
	}
}
