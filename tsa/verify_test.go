package tsa

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/urne-vote/urne/tsa/tsatest"
)

func TestVerifyInProcessToken(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	digest := sha256.Sum256([]byte("register head"))
	tok, err := Verify(a.Token(t, digest[:]), digest[:], []*x509.Certificate{a.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(tok.Time) > time.Minute || tok.Authority == "" {
		t.Fatalf("token %+v", tok)
	}
}

func TestVerifyRefuses(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	forger := tsatest.NewAuthority(t, "Test TSA")
	digest := sha256.Sum256([]byte("register head"))
	other := sha256.Sum256([]byte("another head"))
	good := a.Token(t, digest[:])
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-10] ^= 0xff // inside the signature
	tests := []struct {
		name    string
		token   []byte
		digest  []byte
		trusted []*x509.Certificate
		want    error
	}{
		{"other digest", good, other[:], []*x509.Certificate{a.Cert}, ErrWrongDigest},
		{"forged signer", forger.Token(t, digest[:]), digest[:], []*x509.Certificate{a.Cert}, nil},
		{"no trusted certificate", good, digest[:], nil, ErrUntrusted},
		{"flipped signature byte", flipped, digest[:], []*x509.Certificate{a.Cert}, nil},
		{"garbage", []byte("not a token"), digest[:], []*x509.Certificate{a.Cert}, ErrBadToken},
		{"empty", nil, digest[:], []*x509.Certificate{a.Cert}, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.token, tt.digest, tt.trusted)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
