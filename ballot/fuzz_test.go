package ballot

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
)

// FuzzDecodeVote: the vote decoder never panics and accepts only canonical encodings.
func FuzzDecodeVote(f *testing.F) {
	for _, v := range []Vote{sampleVote(), BlankVote("s")} {
		b, _ := EncodeVote(v)
		f.Add(b)
	}
	f.Add(make([]byte, VoteSize))
	f.Add([]byte{voteVersion, voteKindList, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeVote(data)
		if err != nil {
			return
		}
		again, err := EncodeVote(v)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded %+v from a non-canonical encoding", v)
		}
	})
}

// FuzzDecodeInner: the inner ballot decoder never panics, and nothing but a genuine ballot
// opens.
func FuzzDecodeInner(f *testing.F) {
	ks := testKeys(f)
	genuine := map[string]bool{}
	for _, s := range Suites {
		inner := mustSeal(f, ks.election[s].Public(), sampleVote())
		genuine[string(inner)] = true
		f.Add(inner)
		f.Add(inner[:innerHeaderSize])
	}
	f.Add([]byte{innerVersion, byte(SuiteHPKE)})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := InspectBallot(data)
		if err != nil {
			return
		}
		if len(data) != InnerSize(info.Suite) {
			t.Fatalf("InspectBallot accepted a %d-byte %s ballot", len(data), info.Suite)
		}
		if _, err := OpenBallot(ks.election[info.Suite], data); err == nil && !genuine[string(data)] {
			t.Fatalf("a forged %s ballot opened", info.Suite)
		}
	})
}

// FuzzOpenEnvelope: the envelope decoder never panics, and opens only a genuine envelope for
// its own session.
func FuzzOpenEnvelope(f *testing.F) {
	ks := testKeys(f)
	genuine := map[string]bool{}
	for _, s := range Suites {
		env, err := SealEnvelope(&ks.envelope.PublicKey, "sess", testNonce(), mustSeal(f, ks.election[s].Public(), sampleVote()))
		if err != nil {
			f.Fatal(err)
		}
		genuine[string(env)] = true
		f.Add("sess", env)
		f.Add("other", env)
		f.Add("sess", env[:envelopeHeaderLen])
	}
	f.Add("", []byte{envelopeVersion, envelopeSuiteRSA})
	f.Fuzz(func(t *testing.T, session string, data []byte) {
		inner, nonce, err := OpenEnvelope(ks.envelope, session, data)
		if err != nil {
			return
		}
		if session != "sess" || !genuine[string(data)] || len(nonce) != EnvelopeNonceSize {
			t.Fatalf("a forged envelope opened for session %q", session)
		}
		if _, err := InspectBallot(inner); err != nil {
			t.Fatalf("OpenEnvelope returned a malformed inner ballot: %v", err)
		}
	})
}

// FuzzParseElectionPublicKeys: the public key file parser never panics.
func FuzzParseElectionPublicKeys(f *testing.F) {
	ks := testKeys(f)
	for _, s := range Suites {
		f.Add(ks.election[s].Public().MarshalPEM())
	}
	f.Add([]byte("-----BEGIN URNE HPKE PUBLIC KEY-----\nKEM: MLKEM768-X25519\n\nAAAA\n-----END URNE HPKE PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseElectionPublicKeys(data)
		for _, k := range keys {
			if err == nil && !k.Suite().Known() {
				t.Fatalf("parsed a key of unknown suite %d", k.Suite())
			}
		}
	})
}

// FuzzParseElectionPrivateKey: the private key decoder (what a rebuilt fragment set yields)
// never panics.
func FuzzParseElectionPrivateKey(f *testing.F) {
	ks := testKeys(f)
	for _, s := range Suites {
		b, _ := ks.election[s].MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{byte(SuiteHPKE), 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseElectionPrivateKey(data)
		if err == nil && k.Public() == nil {
			t.Fatal("parsed a private key without its public half")
		}
	})
}

// FuzzVerifyProof: a proof read from JSON never panics the verifier, and no proof makes a
// fingerprint outside the box verify.
func FuzzVerifyProof(f *testing.F) {
	fps := fingerprints(10)
	root := MerkleRoot(fps)
	for _, i := range []int{0, 7, 9} {
		p, _ := ProveFingerprint(fps, fps[i])
		js, _ := json.Marshal(p)
		f.Add(js, fps[i])
	}
	f.Add([]byte(`{"index":1,"size":1,"path":[]}`), []byte("x"))
	f.Fuzz(func(t *testing.T, proofJSON, fp []byte) {
		var p InclusionProof
		if json.Unmarshal(proofJSON, &p) != nil {
			return
		}
		if VerifyProof(root, fp, &p) == nil && !containsBytes(fps, fp) {
			t.Fatalf("fingerprint %x outside the box verified", fp)
		}
	})
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// FuzzVerifyReceipt: a receipt read from JSON never panics the verifier, and only the signed
// receipt verifies.
func FuzzVerifyReceipt(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := sampleReceipt()
	sig, _ := SignReceipt(priv, r)
	want, _ := r.Message()
	js, _ := json.Marshal(r)
	f.Add(js, sig)
	f.Add([]byte(`{"election_id":"e","fingerprint":"00","emarged_at":"2026-01-01T00:00:00Z"}`), sig)
	f.Fuzz(func(t *testing.T, receiptJSON, sig []byte) {
		var got Receipt
		if json.Unmarshal(receiptJSON, &got) != nil {
			return
		}
		if VerifyReceipt(pub, got, sig) == nil {
			if msg, _ := got.Message(); !bytes.Equal(msg, want) {
				t.Fatalf("a receipt other than the signed one verified: %s", msg)
			}
		}
	})
}

// FuzzParseKeyPEM: the envelope and signing key readers never panic, and accept only keys of
// the right type and size.
func FuzzParseKeyPEM(f *testing.F) {
	ks := testKeys(f)
	envPub, _ := MarshalEnvelopePublicKeyPEM(&ks.envelope.PublicKey)
	envPriv, _ := MarshalEnvelopePrivateKeyPEM(ks.envelope)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sigPub, _ := MarshalSigningPublicKeyPEM(pub)
	for _, b := range [][]byte{envPub, envPriv, sigPub, ks.election[SuiteRSA].Public().MarshalPEM()} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParseEnvelopePublicKeyPEM(data); err == nil && k.N.BitLen() != EnvelopeRSABits {
			t.Fatalf("accepted a %d-bit envelope key", k.N.BitLen())
		}
		if k, err := ParseEnvelopePrivateKeyPEM(data); err == nil && k.N.BitLen() != EnvelopeRSABits {
			t.Fatalf("accepted a %d-bit envelope private key", k.N.BitLen())
		}
		if k, err := ParseSigningPublicKeyPEM(data); err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte signing key", len(k))
		}
	})
}
