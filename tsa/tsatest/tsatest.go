// Package tsatest owns the timestamp authorities of tests: a key and certificate made on the
// spot, tokens signed in process, and a real RFC 3161 authority (openssl's ts command) behind
// an HTTP front.
package tsatest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
)

// Authority is a timestamp authority's signing key and self-signed certificate, whose
// extended key usage is timeStamping only, marked critical as RFC 3161 requires.
type Authority struct {
	Name    string
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
	KeyPEM  []byte
}

var (
	oidExtKeyUsage   = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidTimeStamping  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	testPolicy       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	authoritySerials = big.NewInt(1)
)

// NewAuthority makes a key and certificate for an authority named name.
func NewAuthority(t testing.TB, name string) *Authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStamping})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Urne test authority"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Authority{Name: name, Cert: cert, Key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
}

// Token signs a token over a SHA-256 digest in process, dated now.
func (a *Authority) Token(t testing.TB, digest []byte) []byte {
	t.Helper()
	tok, err := a.sign(digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sign builds a response over digest and returns the token it carries.
func (a *Authority) sign(digest []byte, nonce *big.Int) ([]byte, error) {
	resp, err := a.respond(digest, nonce)
	if err != nil {
		return nil, err
	}
	ts, err := timestamp.ParseResponse(resp)
	if err != nil {
		return nil, err
	}
	return ts.RawToken, nil
}

func (a *Authority) respond(digest []byte, nonce *big.Int) ([]byte, error) {
	serial := new(big.Int).Add(authoritySerials, big.NewInt(time.Now().UnixNano()))
	ts := &timestamp.Timestamp{HashAlgorithm: crypto.SHA256, HashedMessage: digest, Time: time.Now(),
		Policy: testPolicy, SerialNumber: serial, Nonce: nonce, AddTSACertificate: true}
	return ts.CreateResponseWithOpts(a.Cert, a.Key, crypto.SHA256)
}

// Reply answers a DER RFC 3161 request in process, as an authority would over HTTP.
func (a *Authority) Reply(request []byte) ([]byte, error) {
	req, err := timestamp.ParseRequest(request)
	if err != nil {
		return nil, err
	}
	return a.respond(req.HashedMessage, req.Nonce)
}
