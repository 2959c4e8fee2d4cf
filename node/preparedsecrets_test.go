package node

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

func testSecrets(t testing.TB, key byte) *secrets {
	t.Helper()
	s, err := newSecrets(bytes.Repeat([]byte{key}, 32), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPreparedSecretIsSealedAndChecked: a prepared bcrypt hash is stored sealed (neither the
// secret nor the bare hash appears), is checked at login like a hashed secret, and only
// opens with the election's pepper key.
func TestPreparedSecretIsSealedAndChecked(t *testing.T) {
	s := testSecrets(t, 1)
	prepared, err := PrepareSecret(" 1234-5678 ", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	records := []*fsmpb.VoterRecord{{VoterId: "alice"}, {VoterId: "bob"}}
	if err := s.sealPrepared([]string{"", ""}, []string{string(prepared), ""}, records); err != nil {
		t.Fatal(err)
	}
	stored := records[0].SecretHash
	if !strings.HasPrefix(string(stored), sealedSecretPrefix) || len(stored) > 128 {
		t.Fatalf("stored form %q", stored)
	}
	if bytes.Contains(stored, prepared) || bytes.Contains(stored, prepared[29:]) || bytes.Contains(stored, []byte("1234")) {
		t.Fatal("the stored form holds the bare hash or the secret")
	}
	if records[1].SecretHash != nil {
		t.Fatal("a voter without a prepared hash got one")
	}
	if !s.check(stored, "1234-5678") || s.check(stored, "1234-5679") {
		t.Fatal("login against a sealed prepared hash gives the wrong answer")
	}
	if other := testSecrets(t, 2); other.check(stored, "1234-5678") {
		t.Fatal("a sealed hash opened under another election's pepper key")
	}
	again := []*fsmpb.VoterRecord{{VoterId: "alice"}}
	if err := s.sealPrepared([]string{""}, []string{string(prepared)}, again); err != nil || !bytes.Equal(again[0].SecretHash, stored) {
		t.Fatalf("sealing the same prepared hash twice differs: %v", err)
	}
}

// TestPreparedSecretRefusals: a weak, malformed or doubled secret is refused, naming the voter.
func TestPreparedSecretRefusals(t *testing.T) {
	s := testSecrets(t, 1)
	s.cost = bcrypt.MinCost + 1
	weak, err := PrepareSecret("1234", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name            string
		plain, prepared string
		want            string
	}{
		{"cost below the cluster's", "", string(weak), "cost 4"},
		{"not a bcrypt hash", "", "1234", "not a bcrypt hash"},
		{"both", "1234", string(weak), "not both"},
	} {
		records := []*fsmpb.VoterRecord{{VoterId: "alice"}}
		err := s.sealPrepared([]string{tc.plain}, []string{tc.prepared}, records)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "alice") {
			t.Fatalf("%s: error %v, want %q naming the voter", tc.name, err, tc.want)
		}
	}
}

// FuzzOpenSealedSecret: whatever bytes a stored secret holds, opening and checking it never
// panics and never accepts.
func FuzzOpenSealedSecret(f *testing.F) {
	s := testSecrets(f, 1)
	f.Add([]byte(sealedSecretPrefix + "AAAA"))
	f.Add([]byte("$2a$04$abcdefghijklmnopqrstuu"))
	f.Add([]byte(sealedSecretPrefix))
	f.Fuzz(func(t *testing.T, stored []byte) {
		if _, _, err := s.sealed.open(stored); err == nil && bytes.HasPrefix(stored, []byte(sealedSecretPrefix)) {
			t.Fatalf("forged sealed secret %q opened", stored)
		}
	})
}

// BenchmarkSealPreparedSecret is what the receiving node pays per voter of a prepared roll,
// against BenchmarkHashSecret for a roll of plaintext secrets.
func BenchmarkSealPreparedSecret(b *testing.B) {
	s := testSecrets(b, 1)
	prepared, err := PrepareSecret("1234", bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	mac := s.sealed.nonceMAC()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.sealed.seal(mac, string(prepared), bcrypt.DefaultCost); err != nil {
			b.Fatal(err)
		}
	}
}

func TestImportProblemsAreListedUpToALimit(t *testing.T) {
	errs := make([]error, 3*maxListedProblems)
	for i := range errs {
		if i%3 != 0 {
			errs[i] = fmt.Errorf("voter %d: bad", i)
		}
	}
	msg := joinProblems(errs).Error()
	if got := strings.Count(msg, ": bad"); got != maxListedProblems {
		t.Fatalf("listed %d problems, want %d:\n%s", got, maxListedProblems, msg)
	}
	if !strings.HasSuffix(msg, fmt.Sprintf("... and %d more", 2*maxListedProblems-maxListedProblems)) || !strings.HasPrefix(msg, "voter 1: bad") {
		t.Fatalf("the rest is not counted, or the first is not first:\n%s", msg)
	}
	if joinProblems(make([]error, 4)) != nil {
		t.Fatal("no problem must join to nil")
	}
}
