package ballot

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

func BenchmarkSealBallot(b *testing.B) {
	ks := testKeys(b)
	for _, s := range Suites {
		b.Run(s.String(), func(b *testing.B) {
			pub := ks.election[s].Public()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SealBallot(pub, sampleVote()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpenBallot(b *testing.B) {
	ks := testKeys(b)
	for _, s := range Suites {
		b.Run(s.String(), func(b *testing.B) {
			inner := mustSeal(b, ks.election[s].Public(), sampleVote())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := OpenBallot(ks.election[s], inner); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSealEnvelope(b *testing.B) {
	ks := testKeys(b)
	inner := mustSeal(b, ks.election[SuiteHPKE].Public(), sampleVote())
	nonce := testNonce()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealEnvelope(&ks.envelope.PublicKey, "session", nonce, inner); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenEnvelope is the cluster's cost per cast: one RSA-2048 decryption and a GCM open.
func BenchmarkOpenEnvelope(b *testing.B) {
	ks := testKeys(b)
	for _, s := range Suites {
		b.Run(s.String(), func(b *testing.B) {
			env, err := SealEnvelope(&ks.envelope.PublicKey, "session", testNonce(), mustSeal(b, ks.election[s].Public(), sampleVote()))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := OpenEnvelope(ks.envelope, "session", env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSignReceipt(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := sampleReceipt()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignReceipt(priv, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMerkleRoot100k(b *testing.B) {
	fps := fingerprints(100_000)
	b.ReportAllocs()
	for b.Loop() {
		MerkleRoot(fps)
	}
}
