package linearize

import (
	"crypto/sha256"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Helpers building crafted operations; times are in milliseconds.

func fp(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func at(call, ret int) (time.Duration, time.Duration) {
	return time.Duration(call) * time.Millisecond, time.Duration(ret) * time.Millisecond
}

func castOK(voter, req, ballot string, call, ret int, emarged int64) Op {
	c, r := at(call, ret)
	return Op{Kind: KindCast, Call: c, Return: r, Outcome: OK, Voter: voter, Request: req, Ballot: fp(ballot),
		Receipt: fp(ballot), EmargedAt: emarged}
}

func castFailed(voter, req, ballot string, call, ret int, why Refusal) Op {
	c, r := at(call, ret)
	return Op{Kind: KindCast, Call: c, Return: r, Outcome: Failed, Refusal: why, Voter: voter, Request: req, Ballot: fp(ballot)}
}

func castUnknown(voter, req, ballot string, call, ret int) Op {
	c, r := at(call, ret)
	return Op{Kind: KindCast, Call: c, Return: r, Outcome: Unknown, Voter: voter, Request: req, Ballot: fp(ballot)}
}

func hasVoted(voter string, voted bool, emarged int64, call, ret int) Op {
	c, r := at(call, ret)
	return Op{Kind: KindHasVoted, Call: c, Return: r, Outcome: OK, Voter: voter, Voted: voted, EmargedAt: emarged}
}

func counts(ballots, emargements uint64, index uint64, call, ret int) Op {
	c, r := at(call, ret)
	return Op{Kind: KindCounts, Call: c, Return: r, Outcome: OK, Voters: 10, Ballots: ballots, Emargements: emargements,
		Phase: 2, Index: index}
}

func status(phase int32, index uint64, call, ret int) Op {
	c, r := at(call, ret)
	return Op{Kind: KindStatus, Call: c, Return: r, Outcome: OK, Phase: phase, Index: index}
}

// replica builds a replica holding the given ballots, each voter émargé at time 1.
func replica(node string, index uint64, digest string, voters map[string]string) Replica {
	r := Replica{Node: node, AppliedIndex: index, Digest: []byte(digest), Voters: 10, Emarged: map[string]int64{}}
	for _, v := range slices.Sorted(maps.Keys(voters)) {
		r.Box = append(r.Box, fp(voters[v]))
		r.Emarged[v] = 1
	}
	r.Ballots, r.Emargements = uint64(len(r.Box)), uint64(len(r.Box))
	return r
}

func TestCheckAcceptsGoodHistories(t *testing.T) {
	ok := map[string]string{"a": "A", "b": "B"}
	tests := []struct {
		name     string
		ops      []Op
		replicas []Replica
	}{
		{"cast, retry, refused second ballot, reads", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castOK("a", "r1", "A", 12, 20, 1), // duplicate retry: first receipt
			castFailed("a", "r2", "A2", 15, 25, RefusedAlreadyVoted),
			hasVoted("a", true, 1, 30, 40),
			castOK("b", "r3", "B", 5, 50, 1),
			hasVoted("b", false, 0, 6, 8), // concurrent with the cast: may precede it
			counts(1, 1, 3, 11, 12),
			counts(2, 2, 5, 60, 70),
			status(2, 5, 71, 72),
		}, []Replica{replica("n1", 5, "d", ok), replica("n2", 5, "d", ok)}},
		{"unknown cast that took effect late", []Op{
			castUnknown("a", "r1", "A", 0, 10),
			hasVoted("a", false, 0, 20, 30),
			hasVoted("a", true, 1, 40, 50),
			castOK("b", "r2", "B", 0, 10, 1),
		}, []Replica{replica("n1", 3, "d", ok)}},
		{"unknown cast that never took effect", []Op{
			castUnknown("a", "r1", "A", 0, 10),
			castOK("b", "r2", "B", 0, 10, 1),
		}, []Replica{replica("n1", 3, "d", map[string]string{"b": "B"})}},
		{"two concurrent casts of one voter, one wins", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castFailed("a", "r2", "A2", 0, 10, RefusedAlreadyVoted),
			castOK("b", "r3", "B", 0, 10, 1),
		}, []Replica{replica("n1", 3, "d", ok)}},
		{"stale count lagging behind", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			func() Op { o := counts(0, 0, 1, 20, 21); o.Stale = true; return o }(),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.ops, tt.replicas, Options{})
			if !r.OK() {
				t.Fatalf("good history rejected:\n%s", r)
			}
		})
	}
}

func TestCheckRejectsBadHistories(t *testing.T) {
	both := map[string]string{"a": "A", "b": "B"}
	onlyB := map[string]string{"b": "B"}
	tests := []struct {
		name     string
		ops      []Op
		replicas []Replica
		want     []string
	}{
		{"lost acknowledged write", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castOK("b", "r2", "B", 0, 10, 1),
		}, []Replica{replica("n1", 4, "d", onlyB)}, []string{CheckLinearizable, CheckAckedPresent}},
		{"lost acknowledged write seen by a read", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			hasVoted("a", false, 0, 20, 30),
		}, nil, []string{CheckLinearizable}},
		{"stale read after a newer read", []Op{
			castOK("a", "r1", "A", 0, 100, 1),
			hasVoted("a", true, 1, 20, 30),
			hasVoted("a", false, 0, 40, 50),
		}, nil, []string{CheckLinearizable}},
		{"stale count", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castOK("b", "r2", "B", 0, 10, 1),
			counts(1, 1, 3, 20, 30),
		}, nil, []string{CheckCountBounds}},
		{"double vote acknowledged", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castOK("a", "r2", "A2", 20, 30, 2),
		}, nil, []string{CheckLinearizable}},
		{"double vote in the box", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castFailed("a", "r2", "A2", 20, 30, RefusedAlreadyVoted),
		}, []Replica{func() Replica {
			r := replica("n1", 3, "d", map[string]string{"a": "A"})
			r.Box = append(r.Box, fp("A2"))
			r.Ballots, r.Emargements = 2, 2
			return r
		}()}, []string{CheckOneBallot}},
		{"duplicate retry refused", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castFailed("a", "r1", "A", 20, 30, RefusedAlreadyVoted),
		}, nil, []string{CheckLinearizable}},
		{"retry answered with another émargement time", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castOK("a", "r1", "A", 20, 30, 2),
		}, nil, []string{CheckLinearizable}},
		{"cast refused before the log yet recorded", []Op{
			castFailed("a", "r1", "A", 0, 10, RefusedNotApplied),
			castOK("b", "r2", "B", 0, 10, 1),
		}, []Replica{replica("n1", 3, "d", both)}, []string{CheckLinearizable}},
		{"unknown cast seen, then unseen", []Op{
			castUnknown("a", "r1", "A", 0, 10),
			hasVoted("a", true, 1, 20, 30),
			hasVoted("a", false, 0, 40, 50),
		}, nil, []string{CheckLinearizable}},
		{"count going back", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			castOK("b", "r2", "B", 0, 100, 1),
			counts(2, 2, 5, 20, 30),
			counts(1, 1, 5, 40, 50),
		}, nil, []string{CheckMonotonic}},
		{"index and phase going back", []Op{
			status(3, 9, 0, 10),
			status(2, 7, 20, 30),
		}, nil, []string{CheckMonotonic}},
		{"émargements differ from ballots", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
			counts(1, 2, 3, 20, 30),
		}, nil, []string{CheckEmargements}},
		{"count above what was sent", []Op{
			castOK("a", "r1", "A", 50, 60, 1),
			counts(1, 1, 3, 20, 30),
		}, nil, []string{CheckCountBounds}},
		{"roll changed", []Op{
			counts(0, 0, 3, 0, 10),
			func() Op { o := counts(0, 0, 3, 20, 30); o.Voters = 11; return o }(),
		}, nil, []string{CheckRoll}},
		{"replicas differ", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
		}, []Replica{replica("n1", 3, "d1", map[string]string{"a": "A"}), replica("n2", 3, "d2", map[string]string{"a": "A"})},
			[]string{CheckDigests}},
		{"replicas never converged", []Op{
			castOK("a", "r1", "A", 0, 10, 1),
		}, []Replica{replica("n1", 3, "d", map[string]string{"a": "A"}), replica("n2", 4, "d", map[string]string{"a": "A"})},
			[]string{CheckDigests}},
		{"foreign ballot", nil, []Replica{func() Replica {
			r := replica("n1", 3, "d", nil)
			r.Box, r.Ballots, r.Emargements = [][]byte{fp("X")}, 1, 1
			return r
		}()}, []string{CheckForeignBallot}},
		{"émargement without ballot", []Op{
			castUnknown("a", "r1", "A", 0, 10),
		}, []Replica{func() Replica {
			r := replica("n1", 3, "d", nil)
			r.Emarged["a"], r.Emargements = 5, 1
			return r
		}()}, []string{CheckLinearizable, CheckEmargements}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.ops, tt.replicas, Options{})
			got := map[string]bool{}
			for _, v := range r.Violations {
				got[v.Check] = true
			}
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(slices.Values(tt.want))) {
				t.Fatalf("checks failed %v, want %v:\n%s", slices.Sorted(maps.Keys(got)), tt.want, r)
			}
		})
	}
}

func TestHistorySaveLoad(t *testing.T) {
	h := NewHistory()
	h.Add(castOK("a", "r1", "A", 5, 10, 1))
	h.Add(castOK("b", "r2", "B", 0, 10, 1))
	path := filepath.Join(t.TempDir(), "h.json")
	if err := Save(path, h.Ops()); err != nil {
		t.Fatal(err)
	}
	ops, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Voter != "b" || string(ops[1].Receipt) != string(fp("A")) {
		t.Fatalf("loaded %v, want both ops ordered by call", ops)
	}
	if tally := TallyOf(ops); tally.OK != 2 || tally.Ops != 2 {
		t.Fatalf("tally %+v", tally)
	}
}
