package ballot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

func fingerprints(n int) [][]byte {
	fps := make([][]byte, n)
	for i := range fps {
		fps[i] = Fingerprint([]byte(fmt.Sprintf("ballot %d", i)))
	}
	return fps
}

// referenceRoot is RFC 9162's MTH, written from the RFC's recursive definition.
func referenceRoot(d [][]byte) []byte {
	switch len(d) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		return leafHash(d[0])
	}
	k := 1
	for k*2 < len(d) {
		k *= 2
	}
	return nodeHash(referenceRoot(d[:k]), referenceRoot(d[k:]))
}

func TestMerkleRootMatchesRFC9162(t *testing.T) {
	for n := 0; n <= 70; n++ {
		fps := fingerprints(n)
		if got, want := MerkleRoot(fps), referenceRoot(SortFingerprints(fps)); !bytes.Equal(got, want) {
			t.Fatalf("n=%d: root %x, RFC 9162 says %x", n, got, want)
		}
	}
}

func TestMerkleRootIgnoresOrder(t *testing.T) {
	fps := fingerprints(33)
	rev := make([][]byte, len(fps))
	for i := range fps {
		rev[len(fps)-1-i] = fps[i]
	}
	if !bytes.Equal(MerkleRoot(fps), MerkleRoot(rev)) {
		t.Fatal("the box digest depends on the order of the fingerprints")
	}
	if bytes.Equal(MerkleRoot(fps), MerkleRoot(fps[1:])) {
		t.Fatal("removing a ballot does not change the box digest")
	}
}

func TestProofsVerify(t *testing.T) {
	for n := 1; n <= 40; n++ {
		sorted := SortFingerprints(fingerprints(n))
		root := MerkleRoot(sorted)
		for i := range sorted {
			p, err := Proof(sorted, i)
			if err != nil {
				t.Fatalf("n=%d i=%d: Proof: %v", n, i, err)
			}
			if err := VerifyProof(root, sorted[i], p); err != nil {
				t.Fatalf("n=%d i=%d: VerifyProof: %v", n, i, err)
			}
		}
	}
}

func TestProofTamperRefused(t *testing.T) {
	fps := fingerprints(13)
	root := MerkleRoot(fps)
	p, err := ProveFingerprint(fps, fps[5])
	if err != nil {
		t.Fatal(err)
	}
	clone := func(f func(q *InclusionProof)) *InclusionProof {
		q := *p
		q.Path = append([]ProofStep(nil), p.Path...)
		f(&q)
		return &q
	}
	tests := []struct {
		name string
		fp   []byte
		p    *InclusionProof
		root []byte
	}{
		{"other fingerprint", fps[6], p, root},
		{"other root", fps[5], p, MerkleRoot(fps[1:])},
		{"hash", fps[5], clone(func(q *InclusionProof) { q.Path[1].Hash = flip(q.Path[1].Hash, 0) }), root},
		{"side", fps[5], clone(func(q *InclusionProof) { q.Path[0].Side = swapSide(q.Path[0].Side) }), root},
		{"index", fps[5], clone(func(q *InclusionProof) { q.Index ^= 1 }), root},
		{"size", fps[5], clone(func(q *InclusionProof) { q.Size = 6 }), root},
		{"short path", fps[5], clone(func(q *InclusionProof) { q.Path = q.Path[:len(q.Path)-1] }), root},
		{"long path", fps[5], clone(func(q *InclusionProof) { q.Path = append(q.Path, q.Path[0]) }), root},
		{"index past size", fps[5], clone(func(q *InclusionProof) { q.Index = q.Size }), root},
		{"nil", fps[5], nil, root},
	}
	for _, tt := range tests {
		if err := VerifyProof(tt.root, tt.fp, tt.p); !errors.Is(err, ErrProof) {
			t.Fatalf("%s: VerifyProof = %v, want ErrProof", tt.name, err)
		}
	}
	if _, err := ProveFingerprint(fps, Fingerprint([]byte("absent"))); !errors.Is(err, ErrProof) {
		t.Fatalf("proof of an absent fingerprint: %v", err)
	}
	sorted := SortFingerprints(fps)
	unsorted := [][]byte{sorted[1], sorted[0]}
	if _, err := Proof(unsorted, 0); !errors.Is(err, ErrProof) {
		t.Fatalf("Proof over an unsorted list: %v", err)
	}
}

func swapSide(s string) string {
	if s == SideLeft {
		return SideRight
	}
	return SideLeft
}

// The docs give a shell recipe (xxd and sha256sum) to check a proof by hand; this runs it on
// a real proof so the recipe cannot drift from the code.
func TestProofShellRecipe(t *testing.T) {
	for _, tool := range []string{"sh", "xxd", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	fps := fingerprints(11)
	p, err := ProveFingerprint(fps, fps[3])
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString(`h() { printf '%s' "$1" | xxd -r -p | sha256sum | cut -d' ' -f1; }` + "\n")
	fmt.Fprintf(&script, "r=$(h 00%x)\n", fps[3])
	for _, s := range p.Path {
		if s.Side == SideLeft {
			fmt.Fprintf(&script, "r=$(h 01%s${r})\n", s.Hash)
		} else {
			fmt.Fprintf(&script, "r=$(h 01${r}%s)\n", s.Hash)
		}
	}
	script.WriteString("echo $r\n")
	out, err := exec.Command("sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("recipe failed: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != hex.EncodeToString(MerkleRoot(fps)) {
		t.Fatalf("shell recipe computes %s, box digest is %x", got, MerkleRoot(fps))
	}
}

func TestProofJSON(t *testing.T) {
	fps := fingerprints(9)
	p, _ := ProveFingerprint(fps, fps[0])
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back InclusionProof
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if err := VerifyProof(MerkleRoot(fps), fps[0], &back); err != nil {
		t.Fatalf("proof after JSON: %v (%s)", err, js)
	}
	if !strings.Contains(string(js), `"side":"`) {
		t.Fatalf("proof JSON lacks sides: %s", js)
	}
}
