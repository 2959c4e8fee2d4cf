package ballot

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func testNonce() []byte {
	n := make([]byte, EnvelopeNonceSize)
	_, _ = rand.Read(n)
	return n
}

func TestEnvelopeRoundTrip(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		inner := mustSeal(t, ks.election[s].Public(), sampleVote())
		nonce := testNonce()
		env, err := SealEnvelope(&ks.envelope.PublicKey, "session-1", nonce, inner)
		if err != nil {
			t.Fatalf("%s: SealEnvelope: %v", s, err)
		}
		if len(env) != EnvelopeSize(s) || len(env) > MaxEnvelopeSize {
			t.Fatalf("%s envelope is %d bytes, want %d", s, len(env), EnvelopeSize(s))
		}
		gotInner, gotNonce, err := OpenEnvelope(ks.envelope, "session-1", env)
		if err != nil {
			t.Fatalf("%s: OpenEnvelope: %v", s, err)
		}
		if !bytes.Equal(gotInner, inner) || !bytes.Equal(gotNonce, nonce) {
			t.Fatalf("%s: envelope returned other bytes", s)
		}
	}
}

func TestEnvelopeBoundToSession(t *testing.T) {
	ks := testKeys(t)
	inner := mustSeal(t, ks.election[SuiteHPKE].Public(), sampleVote())
	env, err := SealEnvelope(&ks.envelope.PublicKey, "session-1", testNonce(), inner)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"session-2", "session-1 ", "Session-1", "session-"} {
		if _, _, err := OpenEnvelope(ks.envelope, other, env); !errors.Is(err, ErrEnvelopeOpen) {
			t.Fatalf("envelope of session-1 replayed into %q: %v, want ErrEnvelopeOpen", other, err)
		}
	}
}

func TestEnvelopeTamperRefused(t *testing.T) {
	ks := testKeys(t)
	inner := mustSeal(t, ks.election[SuiteRSA].Public(), sampleVote())
	env, err := SealEnvelope(&ks.envelope.PublicKey, "s", testNonce(), inner)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"version", flip(env, 0), ErrEnvelopeFormat},
		{"suite", flip(env, 1), ErrEnvelopeFormat},
		{"key id", flip(env, 2), ErrWrongKey},
		{"nonce", flip(env, 2+8+3), ErrEnvelopeOpen},
		{"wrapped key", flip(env, envelopeHeaderLen+10), ErrEnvelopeOpen},
		{"gcm nonce", flip(env, envelopeHeaderLen+256+1), ErrEnvelopeOpen},
		{"inner ballot", flip(env, envelopeHeaderLen+256+12+100), ErrEnvelopeOpen},
		{"tag", flip(env, len(env)-1), ErrEnvelopeOpen},
		{"truncated", env[:len(env)-1], ErrEnvelopeFormat},
		{"short", env[:5], ErrEnvelopeFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := OpenEnvelope(ks.envelope, "s", tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("OpenEnvelope = %v, want %v", err, tt.want)
			}
		})
	}
	if _, _, err := OpenEnvelope(ks.envOther, "s", env); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("envelope opened with another envelope key: %v", err)
	}
}

func TestSealEnvelopeRefusesBadInput(t *testing.T) {
	ks := testKeys(t)
	inner := mustSeal(t, ks.election[SuiteHPKE].Public(), sampleVote())
	pub := &ks.envelope.PublicKey
	tests := []struct {
		name    string
		session string
		nonce   []byte
		inner   []byte
		want    error
	}{
		{"empty session", "", testNonce(), inner, ErrSessionID},
		{"long session", string(make([]byte, MaxSessionIDLen+1)), testNonce(), inner, ErrSessionID},
		{"short nonce", "s", make([]byte, 8), inner, ErrEnvelopeFormat},
		{"malformed inner", "s", testNonce(), inner[:100], ErrBallotFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := SealEnvelope(pub, tt.session, tt.nonce, tt.inner); !errors.Is(err, tt.want) {
				t.Fatalf("SealEnvelope = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := SealEnvelope(ks.election[SuiteRSA].Public().rsa, "s", testNonce(), inner); !errors.Is(err, ErrKeyFormat) {
		t.Fatalf("SealEnvelope to a 4096-bit key = %v, want ErrKeyFormat", err)
	}
}

// An envelope whose content is not a well-formed inner ballot must be refused at the edge,
// even when it decrypts: a cast never stores bytes the tally could not read.
func TestOpenEnvelopeChecksInnerFormat(t *testing.T) {
	ks := testKeys(t)
	inner := mustSeal(t, ks.election[SuiteHPKE].Public(), sampleVote())
	inner[0] = 9 // a future version this build does not read; same size
	env := sealEnvelopeUnchecked(t, ks, "s", inner)
	if _, _, err := OpenEnvelope(ks.envelope, "s", env); !errors.Is(err, ErrBallotFormat) {
		t.Fatalf("OpenEnvelope of a malformed inner ballot = %v, want ErrBallotFormat", err)
	}
}

// sealEnvelopeUnchecked seals any bytes, skipping SealEnvelope's inner-ballot check.
func sealEnvelopeUnchecked(t *testing.T, ks *testKeySet, session string, inner []byte) []byte {
	t.Helper()
	good, err := SealEnvelope(&ks.envelope.PublicKey, session, testNonce(), mustSeal(t, ks.election[SuiteHPKE].Public(), sampleVote()))
	if err != nil {
		t.Fatal(err)
	}
	header := good[:envelopeHeaderLen]
	key := make([]byte, aesKeySize)
	wrapped, err := rsaEncryptForTest(ks, key, envelopeLabel(header))
	if err != nil {
		t.Fatal(err)
	}
	out := append(append([]byte(nil), header...), wrapped...)
	return gcmSeal(out, key, envelopeAAD(header, session), inner)
}

// The cluster stores its envelope key as PEM; a key read back opens what was sealed to it.
func TestEnvelopeKeyPEM(t *testing.T) {
	ks := testKeys(t)
	pubPEM, err := MarshalEnvelopePublicKeyPEM(&ks.envelope.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := MarshalEnvelopePrivateKeyPEM(ks.envelope)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseEnvelopePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParseEnvelopePrivateKeyPEM(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	inner := mustSeal(t, ks.election[SuiteHPKE].Public(), sampleVote())
	env, err := SealEnvelope(pub, "s", testNonce(), inner)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := OpenEnvelope(priv, "s", env); err != nil || !bytes.Equal(got, inner) {
		t.Fatalf("envelope through PEM keys: %v", err)
	}
	if _, err := ParseEnvelopePublicKeyPEM(ks.election[SuiteRSA].Public().MarshalPEM()); !errors.Is(err, ErrKeyFormat) {
		t.Fatalf("a 4096-bit key read as the envelope key: %v", err)
	}
	if _, err := ParseEnvelopePrivateKeyPEM(pubPEM); !errors.Is(err, ErrKeyFormat) {
		t.Fatalf("a public key read as the envelope private key: %v", err)
	}
}
