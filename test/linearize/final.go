package linearize

import (
	"bytes"
	"sort"
	"time"
)

// Replica is the state of one node read after the faults healed and the nodes converged.
type Replica struct {
	Node         string
	AppliedIndex uint64
	Digest       []byte
	Voters       uint64
	Emargements  uint64
	Ballots      uint64
	// Box holds every fingerprint in the node's ballot box.
	Box [][]byte
	// Emarged maps every voter of the history that has an émargement on this node to its time.
	Emarged map[string]int64
}

// ballotOwners maps each ballot fingerprint sent by a cast to its voter.
func ballotOwners(ops []Op) map[string]string {
	out := map[string]string{}
	for _, op := range ops {
		if op.Kind == KindCast {
			out[string(op.Ballot)] = op.Voter
		}
	}
	return out
}

// finalOps turns each replica's state into one KindFinal operation per voter, after every
// operation of the history, replica after replica. A voter with two ballots in a box is
// reported here; the model then sees the first.
func finalOps(ops []Op, replicas []Replica, r *Report) []Op {
	owners := ballotOwners(ops)
	voters := map[string]bool{}
	for _, v := range owners {
		voters[v] = true
	}
	var end time.Duration
	for _, op := range ops {
		end = max(end, op.Return)
	}
	var out []Op
	for i, rep := range replicas {
		inBox := map[string][]byte{}
		for _, fp := range rep.Box {
			v, ok := owners[string(fp)]
			if !ok {
				continue // reported by checkReplicas
			}
			if prev, two := inBox[v]; two {
				r.violate(CheckOneBallot, "%s holds two ballots of voter %s: %x and %x", rep.Node, v, prev, fp)
				continue
			}
			inBox[v] = fp
		}
		at := end + time.Duration(i+1)*time.Millisecond
		for v := range voters {
			emarged, voted := rep.Emarged[v]
			out = append(out, Op{Client: -1 - i, Kind: KindFinal, Call: at, Return: at, Outcome: OK, Node: rep.Node,
				Voter: v, Voted: voted, EmargedAt: emarged, Receipt: inBox[v]})
		}
	}
	return out
}

// checkReplicas checks what no history can explain: counts that disagree with the box, a
// foreign ballot, a missing acknowledged ballot, and replicas that differ at the same index.
func checkReplicas(ops []Op, replicas []Replica, r *Report) {
	owners := ballotOwners(ops)
	for _, rep := range replicas {
		if rep.Emargements != rep.Ballots {
			r.violate(CheckEmargements, "%s holds %d émargements but %d ballots", rep.Node, rep.Emargements, rep.Ballots)
		}
		if rep.Ballots != uint64(len(rep.Box)) {
			r.violate(CheckEmargements, "%s counts %d ballots but its box lists %d", rep.Node, rep.Ballots, len(rep.Box))
		}
		box := map[string]bool{}
		for _, fp := range rep.Box {
			box[string(fp)] = true
			if _, ok := owners[string(fp)]; !ok {
				r.violate(CheckForeignBallot, "%s holds ballot %x, which the run never sent", rep.Node, fp)
			}
		}
		for _, op := range ops {
			if op.Kind == KindCast && op.Outcome == OK && !box[string(op.Ballot)] {
				r.violate(CheckAckedPresent, "%s lost the acknowledged ballot %x of voter %s (%s)", rep.Node, op.Ballot, op.Voter, op)
			}
		}
	}
	checkDigests(replicas, r)
}

func checkDigests(replicas []Replica, r *Report) {
	if len(replicas) == 0 {
		return
	}
	sorted := append([]Replica(nil), replicas...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Node < sorted[j].Node })
	ref := sorted[0]
	for _, rep := range sorted[1:] {
		switch {
		case rep.AppliedIndex != ref.AppliedIndex:
			r.violate(CheckDigests, "%s applied index %d, %s %d: the replicas did not converge", rep.Node, rep.AppliedIndex, ref.Node, ref.AppliedIndex)
		case !bytes.Equal(rep.Digest, ref.Digest):
			r.violate(CheckDigests, "%s digest %x differs from %x of %s at applied index %d", rep.Node, rep.Digest, ref.Digest, ref.Node, rep.AppliedIndex)
		}
	}
}
