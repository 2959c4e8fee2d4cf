package tally

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/ballot"
)

// signedMinutes counts a small box and returns the minutes file, its signatures by the
// president, secretary and two delegates, and the members' public keys.
func signedMinutes(t *testing.T) ([]byte, []*Signature, map[string]ed25519.PublicKey, *electionSetup) {
	t.Helper()
	s := newSetup(t)
	box := generateBox(t, s.pub, 60)
	res, err := Count(s.rebuild(t), testElection(), seq(box.ballots), 60)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Date(2026, 12, 1, 8, 0, 0, 0, time.FixedZone("", 3600))
	closed := time.Date(2026, 12, 8, 17, 0, 0, 0, time.FixedZone("", 3600))
	signers := []string{"president", "secretary", "delegate-a", "delegate-b"}
	m := &Minutes{
		ElectionID: "cnam-2026", ElectionName: "Élections professionnelles", OpenedAt: &opened, ClosedAt: &closed,
		TalliedAt: closed.Add(30 * time.Minute), CeremonyID: s.result.PublicKeys.CeremonyID, Policy: s.policy.String(),
		Fragments: []string{"president", "delegate-a", "delegate-b"}, Result: res, Anomalies: Anomalies(res),
	}
	for _, n := range signers {
		m.Signatories = append(m.Signatories, Signatory{Name: n})
	}
	pv, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var sigs []*Signature
	for _, n := range signers {
		sigs = append(sigs, SignMinutes(pv, n, s.signingKey(t, n)))
	}
	keys, err := s.result.PublicKeys.MemberPublicKeys()
	if err != nil {
		t.Fatal(err)
	}
	return pv, sigs, keys, s
}

func TestVerifyPV(t *testing.T) {
	pv, sigs, keys, _ := signedMinutes(t)
	m, err := VerifyPV(pv, sigs, keys)
	if err != nil {
		t.Fatalf("VerifyPV: %v", err)
	}
	if m.Result.Ballots != 60 {
		t.Fatalf("verified minutes count %d ballots", m.Result.Ballots)
	}
	// Signature files survive a round trip through their JSON form.
	for _, s := range sigs {
		b, _ := s.Marshal()
		back, err := ParseSignature(b)
		if err != nil || !bytes.Equal(back.Signature, s.Signature) {
			t.Fatalf("signature file round trip: %v", err)
		}
	}
}

func TestVerifyPVDetectsTampering(t *testing.T) {
	pv, sigs, keys, _ := signedMinutes(t)
	votes := bytes.Index(pv, []byte(`"votes": `))
	changed := bytes.Clone(pv)
	changed[votes+len(`"votes": `)]++ // one more vote for a list
	if bytes.Equal(changed, pv) {
		t.Fatal("test did not change the minutes")
	}
	whitespace := append(bytes.Clone(pv), ' ')
	forged := *sigs[1]
	forged.Member = "delegate-c" // the secretary's signature presented as delegate-c's
	badSig := *sigs[0]
	badSig.Signature = bytes.Clone(badSig.Signature)
	badSig.Signature[5] ^= 1
	stranger := *sigs[0]
	stranger.Member = "mallory"
	tests := []struct {
		name string
		pv   []byte
		sigs []*Signature
		want error
	}{
		{"vote count changed", changed, sigs, ErrSignature},
		{"whitespace added", whitespace, sigs, ErrSignature},
		{"signature moved to another member", pv, append(sigs, &forged), ErrSignature},
		{"signature bytes altered", pv, append([]*Signature{&badSig}, sigs[1:]...), ErrSignature},
		{"unknown signer", pv, append(sigs, &stranger), ErrSignature},
		{"a signatory did not sign", pv, sigs[1:], ErrUnsigned},
		{"no signatures", pv, nil, ErrUnsigned},
		{"not minutes", []byte(`{"format":"urne-pv-v1"}`), sigs, ErrMinutes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := VerifyPV(tt.pv, tt.sigs, keys); !errors.Is(err, tt.want) {
				t.Fatalf("VerifyPV = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMinutesText(t *testing.T) {
	pv, _, _, _ := signedMinutes(t)
	m, err := ParseMinutes(pv)
	if err != nil {
		t.Fatal(err)
	}
	text := m.Text()
	for _, want := range []string{
		"PROCÈS-VERBAL DE DÉPOUILLEMENT", "Élections professionnelles (cnam-2026)",
		"Ouverture du scrutin : 01/12/2026 08:00:00 (UTC+01:00)", "Bulletins dans l'urne : 60",
		"Scrutin : Comité technique (cte)", "Suffrages exprimés", "Liste Liste A (list-a)",
		m.Result.BoxDigest.String(), "Signataires", "  - secretary",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("minutes text lacks %q:\n%s", want, text)
		}
	}
}

func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		v, e int
		want string
	}{{1, 3, "33,33 %"}, {2, 3, "66,67 %"}, {0, 0, "0,00 %"}, {7, 7, "100,00 %"}, {1, 8, "12,50 %"}} {
		if got := percent(tt.v, tt.e); got != tt.want {
			t.Fatalf("percent(%d, %d) = %q, want %q", tt.v, tt.e, got, tt.want)
		}
	}
}

// The docs say a member's signature on the minutes verifies with openssl alone.
func TestPVSignatureVerifiesWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	pv, sigs, keys, _ := signedMinutes(t)
	dir := t.TempDir()
	pubPEM, _ := ballot.MarshalSigningPublicKeyPEM(keys["president"])
	files := map[string][]byte{"president.pem": pubPEM, "pv.json": pv, "pv.sig": sigs[0].Signature}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", "president.pem", "-rawin", "-in", "pv.json", "-sigfile", "pv.sig")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl refused the president's signature: %v\n%s\n(signature %s)", err, out, base64.StdEncoding.EncodeToString(sigs[0].Signature))
	}
}

func TestMinutesTextObservations(t *testing.T) {
	m := &Minutes{ElectionID: "e", Result: &Result{Ballots: 2, Emargements: 1, Rejected: []Rejected{
		{Fingerprint: make([]byte, 32), Reason: ReasonUnknownScrutin, Scrutin: "ghost"},
	}}}
	text := m.Text()
	for _, want := range []string{"l'urne contient 2 bulletins mais la liste d'émargement compte 1 entrées", "scrutin inconnu ghost", "non renseigné"} {
		if !strings.Contains(text, want) {
			t.Fatalf("minutes text lacks %q:\n%s", want, text)
		}
	}
}
