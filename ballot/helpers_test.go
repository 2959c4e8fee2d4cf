package ballot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"testing"
)

// Key generation (RSA-4096 above all) is slow, so the tests of this package share one set of
// keys, made on first use.
type testKeySet struct {
	election map[Suite]*ElectionPrivateKey
	other    map[Suite]*ElectionPrivateKey // a second key per suite, for wrong-key tests
	envelope *rsa.PrivateKey
	envOther *rsa.PrivateKey
}

var (
	testKeysOnce sync.Once
	testKeysVal  *testKeySet
	testKeysErr  error
)

func testKeys(tb testing.TB) *testKeySet {
	tb.Helper()
	testKeysOnce.Do(func() {
		ks := &testKeySet{election: map[Suite]*ElectionPrivateKey{}, other: map[Suite]*ElectionPrivateKey{}}
		for _, s := range Suites {
			if ks.election[s], testKeysErr = GenerateElectionKey(s); testKeysErr != nil {
				return
			}
			if ks.other[s], testKeysErr = GenerateElectionKey(s); testKeysErr != nil {
				return
			}
		}
		if ks.envelope, testKeysErr = GenerateEnvelopeKey(); testKeysErr != nil {
			return
		}
		ks.envOther, testKeysErr = GenerateEnvelopeKey()
		testKeysVal = ks
	})
	if testKeysErr != nil {
		tb.Fatalf("generate test keys: %v", testKeysErr)
	}
	return testKeysVal
}

func sampleVote() Vote {
	return Vote{Scrutin: "cte-2026", List: "list-b", Candidates: []string{"cand-07", "cand-02"}}
}

func mustSeal(tb testing.TB, pub *ElectionPublicKey, v Vote) []byte {
	tb.Helper()
	inner, err := SealBallot(pub, v)
	if err != nil {
		tb.Fatalf("SealBallot: %v", err)
	}
	return inner
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

func rsaEncryptForTest(ks *testKeySet, msg, label []byte) ([]byte, error) {
	return rsa.EncryptOAEP(sha256.New(), rand.Reader, &ks.envelope.PublicKey, msg, label)
}
