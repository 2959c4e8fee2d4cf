package tsa

import (
	"crypto/sha256"
	"crypto/x509"
	"testing"

	"github.com/urne-vote/urne/tsa/tsatest"
)

// FuzzToken feeds arbitrary bytes to the token reader and verifier: an error or a token, never
// a panic, and never a verified token over another digest.
func FuzzToken(f *testing.F) {
	a := tsatest.NewAuthority(f, "Fuzz TSA")
	digest := sha256.Sum256([]byte("head"))
	good := a.Token(f, digest[:])
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x30, 0x80})
	f.Add([]byte{})
	trusted := []*x509.Certificate{a.Cert}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseToken(b)
		tok, err := Verify(b, digest[:], trusted)
		if err == nil && string(tok.Digest) != string(digest[:]) {
			t.Fatal("verified a token over another digest")
		}
	})
}
