package ballot

import (
	"bytes"
	"errors"
	"math/big"
	"reflect"
	"testing"
)

func TestBallotRoundTrip(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		t.Run(s.String(), func(t *testing.T) {
			priv := ks.election[s]
			for _, v := range []Vote{sampleVote(), BlankVote("cte-2026")} {
				inner := mustSeal(t, priv.Public(), v)
				if len(inner) != InnerSize(s) {
					t.Fatalf("%s ballot is %d bytes, want %d", s, len(inner), InnerSize(s))
				}
				info, err := InspectBallot(inner)
				if err != nil || info.Suite != s || info.KeyID != priv.Public().ID() {
					t.Fatalf("InspectBallot = %+v, %v", info, err)
				}
				got, err := OpenBallot(priv, inner)
				if err != nil {
					t.Fatalf("OpenBallot: %v", err)
				}
				if !reflect.DeepEqual(got, v) {
					t.Fatalf("opened %+v, sealed %+v", got, v)
				}
			}
		})
	}
}

// Two seals of the same vote must differ, or the box would reveal equal votes.
func TestBallotSealIsRandomized(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		a := mustSeal(t, ks.election[s].Public(), sampleVote())
		b := mustSeal(t, ks.election[s].Public(), sampleVote())
		if bytes.Equal(a, b) || bytes.Equal(Fingerprint(a), Fingerprint(b)) {
			t.Fatalf("%s: two seals of one vote are equal", s)
		}
	}
}

func TestBallotTamperRefused(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		priv := ks.election[s]
		inner := mustSeal(t, priv.Public(), sampleVote())
		tests := []struct {
			name string
			b    []byte
			want error
		}{
			{"version byte", flip(inner, 0), ErrBallotFormat},
			{"suite byte", flip(inner, 1), ErrBallotFormat},
			{"key id", flip(inner, 2), ErrWrongKey},
			{"wrapped key or encapsulation", flip(inner, innerHeaderSize+5), ErrBallotOpen},
			{"ciphertext", flip(inner, len(inner)-40), ErrBallotOpen},
			{"tag", flip(inner, len(inner)-1), ErrBallotOpen},
			{"truncated", inner[:len(inner)-1], ErrBallotFormat},
			{"extended", append(append([]byte(nil), inner...), 0), ErrBallotFormat},
			{"empty", nil, ErrBallotFormat},
		}
		for _, tt := range tests {
			t.Run(s.String()+"/"+tt.name, func(t *testing.T) {
				if v, err := OpenBallot(priv, tt.b); !errors.Is(err, tt.want) {
					t.Fatalf("OpenBallot of a tampered ballot = %+v, %v; want %v", v, err, tt.want)
				}
			})
		}
	}
}

func TestBallotWrongKeyRefused(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		inner := mustSeal(t, ks.election[s].Public(), sampleVote())
		for _, wrong := range []*ElectionPrivateKey{ks.other[s], ks.other[otherSuite(s)]} {
			if _, err := OpenBallot(wrong, inner); !errors.Is(err, ErrWrongKey) {
				t.Fatalf("%s ballot opened with %s key %s: %v", s, wrong.Public().Suite(), wrong.Public().ID(), err)
			}
		}
	}
}

func otherSuite(s Suite) Suite {
	if s == SuiteRSA {
		return SuiteHPKE
	}
	return SuiteRSA
}

func TestElectionPrivateKeyEncoding(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		b, err := ks.election[s].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseElectionPrivateKey(b)
		if err != nil {
			t.Fatalf("%s: ParseElectionPrivateKey: %v", s, err)
		}
		if back.Public().ID() != ks.election[s].Public().ID() {
			t.Fatalf("%s: key id changed in a round trip", s)
		}
		inner := mustSeal(t, ks.election[s].Public(), sampleVote())
		if _, err := OpenBallot(back, inner); err != nil {
			t.Fatalf("%s: decoded key does not open: %v", s, err)
		}
	}
}

func TestZeroedKeyOpensNothing(t *testing.T) {
	ks := testKeys(t)
	for _, s := range Suites {
		b, _ := ks.election[s].MarshalBinary()
		k, err := ParseElectionPrivateKey(b)
		if err != nil {
			t.Fatal(err)
		}
		inner := mustSeal(t, k.Public(), sampleVote())
		var secrets []*big.Int
		if s == SuiteRSA {
			secrets = append([]*big.Int{k.rsa.D, k.rsa.Precomputed.Dp}, k.rsa.Primes...)
		}
		k.Zero()
		if _, err := OpenBallot(k, inner); !errors.Is(err, ErrKeyFormat) {
			t.Fatalf("%s: zeroed key still opens a ballot: %v", s, err)
		}
		if _, err := k.MarshalBinary(); err == nil {
			t.Fatalf("%s: zeroed key still encodes", s)
		}
		for i, n := range secrets {
			if n.Sign() != 0 {
				t.Fatalf("%s: private value %d survived Zero", s, i)
			}
		}
	}
}

func TestElectionPublicKeyPEM(t *testing.T) {
	ks := testKeys(t)
	var file []byte
	for _, s := range Suites {
		file = append(file, ks.election[s].Public().MarshalPEM()...)
	}
	keys, err := ParseElectionPublicKeys(file)
	if err != nil {
		t.Fatalf("ParseElectionPublicKeys: %v", err)
	}
	if len(keys) != len(Suites) {
		t.Fatalf("parsed %d keys, want %d", len(keys), len(Suites))
	}
	for i, s := range Suites {
		if keys[i].Suite() != s || keys[i].ID() != ks.election[s].Public().ID() {
			t.Fatalf("key %d: %s %s, want %s %s", i, keys[i].Suite(), keys[i].ID(), s, ks.election[s].Public().ID())
		}
		inner := mustSeal(t, keys[i], sampleVote())
		if _, err := OpenBallot(ks.election[s], inner); err != nil {
			t.Fatalf("ballot sealed to a parsed %s key does not open: %v", s, err)
		}
	}
}

func TestElectionPublicKeyRefused(t *testing.T) {
	ks := testKeys(t)
	envPEM, err := MarshalEnvelopePublicKeyPEM(&ks.envelope.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	envPriv, _ := MarshalEnvelopePrivateKeyPEM(ks.envelope)
	hpkePEM := ks.election[SuiteHPKE].Public().MarshalPEM()
	tests := map[string][]byte{
		"empty":                 nil,
		"2048-bit rsa key":      envPEM,
		"private key":           envPriv,
		"hpke key of other kem": bytes.Replace(hpkePEM, []byte(kemName), []byte("MLKEM768-P256"), 1),
		"truncated hpke key":    bytes.Replace(hpkePEM, []byte("\n-----END"), []byte("AAAA\n-----END"), 1),
	}
	for name, data := range tests {
		if _, err := ParseElectionPublicKeys(data); !errors.Is(err, ErrKeyFormat) {
			t.Fatalf("%s: ParseElectionPublicKeys = %v, want ErrKeyFormat", name, err)
		}
	}
}
