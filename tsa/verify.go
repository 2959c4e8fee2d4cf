package tsa

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"
)

// MaxTokenSize bounds a token read from a response, a register or an export.
const MaxTokenSize = 64 << 10

// Sentinel errors.
var (
	// ErrBadToken: the bytes are not a timestamp token this package can read.
	ErrBadToken = errors.New("unreadable timestamp token")
	// ErrUntrusted: the token's signature does not verify against any trusted authority certificate.
	ErrUntrusted = errors.New("timestamp token not signed by a trusted authority")
	// ErrWrongDigest: the token is genuine but stamps another digest than the one expected.
	ErrWrongDigest = errors.New("timestamp token stamps another digest")
	// ErrNoAuthority: every configured authority failed, or none is configured.
	ErrNoAuthority = errors.New("no timestamp authority answered")
)

// Token is what a verified (or merely parsed) timestamp token says.
type Token struct {
	// Time is the authority's genTime.
	Time time.Time
	// Digest is the SHA-256 digest the token stamps.
	Digest []byte
	// Serial is the authority's serial number of the token.
	Serial *big.Int
	// Nonce is the request's nonce echoed by the authority, if any.
	Nonce *big.Int
	// Authority is the subject of the certificate that signed the token, when known.
	Authority string
}

// ParseToken reads a DER timestamp token (a CMS SignedData over a TSTInfo) without checking
// who signed it. It never panics on any input.
func ParseToken(der []byte) (tok *Token, err error) {
	if len(der) == 0 || len(der) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, want 1 to %d", ErrBadToken, len(der), MaxTokenSize)
	}
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("%w: %v", ErrBadToken, r)
		}
	}()
	ts, err := timestamp.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if ts.HashAlgorithm != crypto.SHA256 {
		return nil, fmt.Errorf("%w: it stamps a %v digest, want SHA-256", ErrBadToken, ts.HashAlgorithm)
	}
	tok = &Token{Time: ts.Time, Digest: ts.HashedMessage, Serial: ts.SerialNumber, Nonce: ts.Nonce}
	if len(ts.Certificates) > 0 {
		tok.Authority = ts.Certificates[0].Subject.String()
	}
	return tok, nil
}

// Verify checks that der is a token over digest (SHA-256), signed by a key whose certificate
// is one of trusted (or chains to one), valid for time stamping at the token's own time, so
// that a token stays verifiable offline after the authority's certificate expires.
func Verify(der, digest []byte, trusted []*x509.Certificate) (*Token, error) {
	tok, err := ParseToken(der)
	if err != nil {
		return nil, err
	}
	if len(trusted) == 0 {
		return nil, fmt.Errorf("%w: no authority certificate was given to check it against", ErrUntrusted)
	}
	signer, err := verifySigner(der, tok.Time, trusted)
	if err != nil {
		return nil, err
	}
	tok.Authority = signer.Subject.String()
	if !bytes.Equal(tok.Digest, digest) {
		return nil, fmt.Errorf("%w: it stamps %x, want %x", ErrWrongDigest, tok.Digest, digest)
	}
	return tok, nil
}

// verifySigner checks the CMS signature and the signer's chain to trusted, at the token's time.
func verifySigner(der []byte, at time.Time, trusted []*x509.Certificate) (signer *x509.Certificate, err error) {
	defer func() {
		if r := recover(); r != nil {
			signer, err = nil, fmt.Errorf("%w: %v", ErrBadToken, r)
		}
	}()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	roots := x509.NewCertPool()
	intermediates := x509.NewCertPool()
	for _, c := range trusted {
		roots.AddCert(c)
	}
	for _, c := range p7.Certificates {
		intermediates.AddCert(c)
	}
	// Trusted certificates first: a token that carries no certificate still finds its signer.
	p7.Certificates = append(append([]*x509.Certificate(nil), trusted...), p7.Certificates...)
	opts := x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}
	if err := p7.VerifyWithOpts(opts); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if signer = p7.GetOnlySigner(); signer == nil {
		return nil, fmt.Errorf("%w: the token has %d signers, want 1", ErrBadToken, len(p7.Signers))
	}
	return signer, nil
}
