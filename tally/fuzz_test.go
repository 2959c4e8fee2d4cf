package tally

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// FuzzReadExport: the ballot export reader never panics, and a complete read yields exactly
// the number of ballots the header announces.
func FuzzReadExport(f *testing.F) {
	ballots := [][]byte{bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, 100)}
	var buf bytes.Buffer
	_ = WriteExport(&buf, ExportHeader{ElectionID: "e", Emargements: 2, BoxDigest: boxDigest(ballots)}, ballots)
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":"urne-ballots-v1","ballots":1}` + "\n" + `{"ballot":"AAAA"}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		exp, err := ReadExport(bytes.NewReader(data))
		if err != nil {
			return
		}
		n := 0
		for _, err := range exp.Ballots() {
			if err != nil {
				return
			}
			n++
		}
		if n != exp.Header.Ballots {
			t.Fatalf("read %d ballots of an export announcing %d", n, exp.Header.Ballots)
		}
	})
}

// FuzzVerifyPV: minutes and signature files from outside never panic the verifier, and no
// minutes verify without the member's real signature.
func FuzzVerifyPV(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]ed25519.PublicKey{"president": pub}
	pv := []byte(`{"format":"urne-pv-v1","election_id":"e","tallied_at":"2026-12-08T17:00:00Z","result":{"ballots":0},"signatories":[{"name":"president"}]}`)
	sig, _ := SignMinutes(pv, "president", priv).Marshal()
	f.Add(pv, sig)
	f.Add([]byte(`{"format":"urne-pv-v1"}`), []byte(`{"format":"urne-pv-signature-v1","member":"president"}`))
	f.Fuzz(func(t *testing.T, pvData, sigData []byte) {
		if _, err := ParseMinutes(pvData); err != nil {
			return
		}
		s, err := ParseSignature(sigData)
		if err != nil {
			return
		}
		if _, err := VerifyPV(pvData, []*Signature{s}, keys); err == nil && !bytes.Equal(pvData, pv) {
			t.Fatalf("minutes other than the signed ones verified: %s", pvData)
		}
	})
}
