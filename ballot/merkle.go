package ballot

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
)

// The box digest is the Merkle tree hash of RFC 9162 (Certificate Transparency 2.0, section
// 2.1) over the box's fingerprints sorted in ascending byte order:
//
//	leaf(fp)     = SHA-256(0x00 || fp)
//	node(l, r)   = SHA-256(0x01 || l || r)
//	root of none = SHA-256("")
//
// Sorting makes the root depend only on the set of ballots, never on the order of casting.
// Building the tree level by level, an unpaired last node moves up a level unchanged, which
// gives exactly RFC 9162's tree.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// Sides of a proof step: where the sibling hash goes when it is combined with the running hash.
const (
	SideLeft  = "left"
	SideRight = "right"
)

// InclusionProof shows that a fingerprint is a leaf of the tree with a given root.
type InclusionProof struct {
	// Index is the fingerprint's position in the sorted list; Size is the number of leaves.
	Index uint64 `json:"index"`
	Size  uint64 `json:"size"`
	// Path goes from the leaf up to the root.
	Path []ProofStep `json:"path"`
}

// ProofStep is one sibling hash and the side it sits on: with side "left" the next hash is
// node(hash, running), with "right" it is node(running, hash).
type ProofStep struct {
	Side string `json:"side"`
	Hash Hex    `json:"hash"`
}

// SortFingerprints returns a sorted copy of fps: the leaf order of the box's tree.
func SortFingerprints(fps [][]byte) [][]byte {
	sorted := slices.Clone(fps)
	slices.SortFunc(sorted, bytes.Compare)
	return sorted
}

// MerkleRoot is the box digest over fps, in any order.
func MerkleRoot(fps [][]byte) []byte {
	if len(fps) == 0 {
		sum := sha256.Sum256(nil)
		return sum[:]
	}
	level := leafHashes(SortFingerprints(fps))
	for len(level) > 1 {
		level = nextLevel(level)
	}
	return level[0]
}

func leafHashes(sorted [][]byte) [][]byte {
	out := make([][]byte, len(sorted))
	for i, fp := range sorted {
		out[i] = leafHash(fp)
	}
	return out
}

func leafHash(fp []byte) []byte {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(fp)
	return h.Sum(nil)
}

func nodeHash(left, right []byte) []byte {
	h := sha256.New()
	h.Write([]byte{nodePrefix})
	h.Write(left)
	h.Write(right)
	return h.Sum(nil)
}

// nextLevel pairs neighbours; an unpaired last node moves up unchanged.
func nextLevel(level [][]byte) [][]byte {
	next := make([][]byte, 0, (len(level)+1)/2)
	for i := 0; i+1 < len(level); i += 2 {
		next = append(next, nodeHash(level[i], level[i+1]))
	}
	if len(level)%2 == 1 {
		next = append(next, level[len(level)-1])
	}
	return next
}

// Proof builds the inclusion proof of sorted[i]. sorted must be in ascending order (see
// SortFingerprints), as the published fingerprint list is.
func Proof(sorted [][]byte, i int) (*InclusionProof, error) {
	if i < 0 || i >= len(sorted) {
		return nil, errorf(ErrProof, "leaf %d is outside a list of %d fingerprints", i, len(sorted))
	}
	if !slices.IsSortedFunc(sorted, bytes.Compare) {
		return nil, errorf(ErrProof, "fingerprints must be sorted to build a proof")
	}
	p := &InclusionProof{Index: uint64(i), Size: uint64(len(sorted))}
	level, idx := leafHashes(sorted), i
	for len(level) > 1 {
		if sib := idx ^ 1; sib < len(level) {
			side := SideRight
			if idx%2 == 1 {
				side = SideLeft
			}
			p.Path = append(p.Path, ProofStep{Side: side, Hash: level[sib]})
		}
		level, idx = nextLevel(level), idx/2
	}
	return p, nil
}

// ProveFingerprint finds fp among fps (in any order) and builds its inclusion proof.
func ProveFingerprint(fps [][]byte, fp []byte) (*InclusionProof, error) {
	sorted := SortFingerprints(fps)
	i, found := slices.BinarySearchFunc(sorted, fp, bytes.Compare)
	if !found {
		return nil, errorf(ErrProof, "fingerprint %x is not in the box", fp)
	}
	return Proof(sorted, i)
}

// VerifyProof checks that fp is leaf p.Index of a tree of p.Size leaves with the given root,
// following RFC 9162 section 2.1.3.2; each step's side must be the one the index implies.
func VerifyProof(root, fp []byte, p *InclusionProof) error {
	if p == nil || p.Size == 0 || p.Index >= p.Size || len(p.Path) > 64 {
		return errorf(ErrProof, "inclusion proof is malformed (index, size or path length)")
	}
	fn, sn, r := p.Index, p.Size-1, leafHash(fp)
	for i, step := range p.Path {
		if sn == 0 {
			return errorf(ErrProof, "inclusion proof has %d steps; a tree of %d leaves needs fewer", len(p.Path), p.Size)
		}
		if fn%2 == 1 || fn == sn {
			if step.Side != SideLeft {
				return errorf(ErrProof, "step %d of the proof should be a left sibling", i)
			}
			r = nodeHash(step.Hash, r)
			for fn%2 == 0 && fn != 0 {
				fn, sn = fn/2, sn/2
			}
		} else {
			if step.Side != SideRight {
				return errorf(ErrProof, "step %d of the proof should be a right sibling", i)
			}
			r = nodeHash(r, step.Hash)
		}
		fn, sn = fn/2, sn/2
	}
	if sn != 0 || subtle.ConstantTimeCompare(r, root) != 1 {
		return errorf(ErrProof, "fingerprint %x does not lead to box digest %x", fp, root)
	}
	return nil
}
