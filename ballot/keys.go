package ballot

import (
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
)

// Key sizes fixed by the formats: ballots and envelopes have one size per suite because the
// wrapped key is as long as the RSA modulus.
const (
	// ElectionRSABits is the modulus size of a SuiteRSA election key.
	ElectionRSABits = 4096
	// EnvelopeRSABits is the modulus size of the cluster's envelope key.
	EnvelopeRSABits = 2048
)

// PEM block types. The RSA election key and the envelope key use the standard PKIX "PUBLIC
// KEY" block so that openssl reads them; the HPKE key has no standard PEM form, so it gets
// its own type and names its KEM in a header.
const (
	pemPublicKey     = "PUBLIC KEY"
	pemPrivateKey    = "PRIVATE KEY"
	pemHPKEPublicKey = "URNE HPKE PUBLIC KEY"
	pemKEMHeader     = "KEM"
	kemName          = "MLKEM768-X25519"
)

// hpkeKEM is the KEM of SuiteHPKE.
var hpkeKEM = hpke.MLKEM768X25519()

// ElectionPublicKey is the public half of the election key of one suite: what the voter's
// device seals ballots to and what the cluster stores and seals into the configuration.
type ElectionPublicKey struct {
	suite   Suite
	rsa     *rsa.PublicKey
	hpke    hpke.PublicKey
	encoded []byte // PKIX DER (rsa) or the KEM's public key bytes (hpke)
	id      KeyID
}

// NewRSAElectionPublicKey wraps a 4096-bit RSA public key.
func NewRSAElectionPublicKey(pub *rsa.PublicKey) (*ElectionPublicKey, error) {
	if pub == nil || pub.N == nil || pub.N.BitLen() != ElectionRSABits {
		return nil, errorf(ErrKeyFormat, "an rsa election key must have a %d-bit modulus; this one has %d bits", ElectionRSABits, bitLen(pub))
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "rsa election key does not encode: %v", err)
	}
	return &ElectionPublicKey{suite: SuiteRSA, rsa: pub, encoded: der, id: keyIDOf(der)}, nil
}

// NewHPKEElectionPublicKey wraps an ML-KEM-768 + X25519 HPKE public key.
func NewHPKEElectionPublicKey(pub hpke.PublicKey) (*ElectionPublicKey, error) {
	if pub == nil || pub.KEM().ID() != hpkeKEM.ID() {
		return nil, errorf(ErrKeyFormat, "an hpke election key must use the %s KEM", kemName)
	}
	b := pub.Bytes()
	return &ElectionPublicKey{suite: SuiteHPKE, hpke: pub, encoded: b, id: keyIDOf(b)}, nil
}

func bitLen(pub *rsa.PublicKey) int {
	if pub == nil || pub.N == nil {
		return 0
	}
	return pub.N.BitLen()
}

// Suite is the suite ballots sealed to this key use.
func (k *ElectionPublicKey) Suite() Suite { return k.suite }

// ID is the key id written in every ballot sealed to this key.
func (k *ElectionPublicKey) ID() KeyID { return k.id }

// Bytes is the key's canonical encoding (PKIX DER for rsa, the KEM encoding for hpke): the
// bytes a configuration seal digests.
func (k *ElectionPublicKey) Bytes() []byte { return append([]byte(nil), k.encoded...) }

// MarshalPEM encodes the key as one PEM block.
func (k *ElectionPublicKey) MarshalPEM() []byte {
	if k.suite == SuiteRSA {
		return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: k.encoded})
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemHPKEPublicKey, Headers: map[string]string{pemKEMHeader: kemName}, Bytes: k.encoded})
}

// maxKeyFile bounds the PEM text ParseElectionPublicKeys reads.
const maxKeyFile = 64 << 10

// ParseElectionPublicKeys reads every PEM block of a public key file: one election key per
// suite, in file order. A block of any other type is an error, so a private key pasted by
// mistake is refused rather than ignored.
func ParseElectionPublicKeys(data []byte) ([]*ElectionPublicKey, error) {
	if len(data) > maxKeyFile {
		return nil, errorf(ErrKeyFormat, "public key file is %d bytes; at most %d are read", len(data), maxKeyFile)
	}
	var keys []*ElectionPublicKey
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		data = rest
		k, err := parseElectionPublicBlock(block)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errorf(ErrKeyFormat, "no PEM-encoded election public key found")
	}
	return keys, nil
}

func parseElectionPublicBlock(block *pem.Block) (*ElectionPublicKey, error) {
	switch block.Type {
	case pemPublicKey:
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, errorf(ErrKeyFormat, "election public key: %v", err)
		}
		rsaPub, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, errorf(ErrKeyFormat, "election public key is a %T, not an RSA key", pub)
		}
		return NewRSAElectionPublicKey(rsaPub)
	case pemHPKEPublicKey:
		if kem := block.Headers[pemKEMHeader]; kem != kemName {
			return nil, errorf(ErrKeyFormat, "hpke election public key names KEM %q; this build reads %s", kem, kemName)
		}
		pub, err := hpkeKEM.NewPublicKey(block.Bytes)
		if err != nil {
			return nil, errorf(ErrKeyFormat, "hpke election public key: %v", err)
		}
		return NewHPKEElectionPublicKey(pub)
	}
	return nil, errorf(ErrKeyFormat, "PEM block %q is not an election public key", block.Type)
}

// ElectionPrivateKey is the private half of one suite's election key. It exists only in the
// ceremony that creates it and in the tally process that rebuilds it.
type ElectionPrivateKey struct {
	pub  *ElectionPublicKey
	rsa  *rsa.PrivateKey
	hpke hpke.PrivateKey
}

// GenerateElectionKey creates a fresh election key pair for suite s.
func GenerateElectionKey(s Suite) (*ElectionPrivateKey, error) {
	switch s {
	case SuiteRSA:
		k, err := rsa.GenerateKey(rand.Reader, ElectionRSABits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa election key: %w", err)
		}
		return newRSAPrivate(k)
	case SuiteHPKE:
		k, err := hpkeKEM.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("generate hpke election key: %w", err)
		}
		return newHPKEPrivate(k)
	}
	return nil, errorf(ErrBallotFormat, "cannot generate a key for unknown suite %d", s)
}

func newRSAPrivate(k *rsa.PrivateKey) (*ElectionPrivateKey, error) {
	pub, err := NewRSAElectionPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &ElectionPrivateKey{pub: pub, rsa: k}, nil
}

func newHPKEPrivate(k hpke.PrivateKey) (*ElectionPrivateKey, error) {
	pub, err := NewHPKEElectionPublicKey(k.PublicKey())
	if err != nil {
		return nil, err
	}
	return &ElectionPrivateKey{pub: pub, hpke: k}, nil
}

// Public is the public half.
func (k *ElectionPrivateKey) Public() *ElectionPublicKey { return k.pub }

// MarshalBinary encodes the private key as suite byte | PKCS#8 DER (rsa) or the KEM's 32-byte
// seed (hpke). The ceremony encrypts these bytes; they are never written in the clear.
func (k *ElectionPrivateKey) MarshalBinary() ([]byte, error) {
	switch {
	case k.rsa != nil:
		der, err := x509.MarshalPKCS8PrivateKey(k.rsa)
		if err != nil {
			return nil, fmt.Errorf("encode rsa election key: %w", err)
		}
		return append([]byte{byte(SuiteRSA)}, der...), nil
	case k.hpke != nil:
		b, err := k.hpke.Bytes()
		if err != nil {
			return nil, fmt.Errorf("encode hpke election key: %w", err)
		}
		return append([]byte{byte(SuiteHPKE)}, b...), nil
	}
	return nil, errorf(ErrKeyFormat, "election private key has been zeroed")
}

// ParseElectionPrivateKey reads what MarshalBinary wrote.
func ParseElectionPrivateKey(b []byte) (*ElectionPrivateKey, error) {
	if len(b) < 2 {
		return nil, errorf(ErrKeyFormat, "election private key is %d bytes", len(b))
	}
	switch Suite(b[0]) {
	case SuiteRSA:
		k, err := x509.ParsePKCS8PrivateKey(b[1:])
		if err != nil {
			return nil, errorf(ErrKeyFormat, "rsa election private key: %v", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errorf(ErrKeyFormat, "rsa election private key holds a %T", k)
		}
		return newRSAPrivate(rk)
	case SuiteHPKE:
		k, err := hpkeKEM.NewPrivateKey(b[1:])
		if err != nil {
			return nil, errorf(ErrKeyFormat, "hpke election private key: %v", err)
		}
		return newHPKEPrivate(k)
	}
	return nil, errorf(ErrKeyFormat, "election private key has unknown suite %d", b[0])
}

// Zero overwrites the RSA private values this key owns and drops every reference to the
// private key, so the key can no longer open ballots. Go cannot promise that no copy survives
// elsewhere in memory (copied stacks, values the standard library precomputes and keeps out of
// reach): Zero shortens the key's life in memory, it does not prove its erasure.
func (k *ElectionPrivateKey) Zero() {
	if k == nil {
		return
	}
	if k.rsa != nil {
		zeroInts(append([]*big.Int{k.rsa.D, k.rsa.Precomputed.Dp, k.rsa.Precomputed.Dq, k.rsa.Precomputed.Qinv}, k.rsa.Primes...)...)
	}
	k.rsa, k.hpke = nil, nil
}

func zeroInts(ints ...*big.Int) {
	for _, n := range ints {
		if n == nil {
			continue
		}
		clear(n.Bits())
		n.SetInt64(0)
	}
}

// GenerateEnvelopeKey creates the cluster's envelope key pair (RSA-2048).
func GenerateEnvelopeKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, EnvelopeRSABits)
	if err != nil {
		return nil, fmt.Errorf("generate envelope key: %w", err)
	}
	return k, nil
}

// EnvelopeKeyID is the key id that envelopes sealed to pub carry.
func EnvelopeKeyID(pub *rsa.PublicKey) (KeyID, error) {
	if bitLen(pub) != EnvelopeRSABits {
		return KeyID{}, errorf(ErrKeyFormat, "the envelope key must have a %d-bit modulus; this one has %d bits", EnvelopeRSABits, bitLen(pub))
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return KeyID{}, errorf(ErrKeyFormat, "envelope key does not encode: %v", err)
	}
	return keyIDOf(der), nil
}

// MarshalEnvelopePublicKeyPEM encodes the envelope public key as a PKIX "PUBLIC KEY" block.
func MarshalEnvelopePublicKeyPEM(pub *rsa.PublicKey) ([]byte, error) {
	if _, err := EnvelopeKeyID(pub); err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKIXPublicKey(pub) // EnvelopeKeyID just encoded it
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParseEnvelopePublicKeyPEM reads a PKIX "PUBLIC KEY" block holding a 2048-bit RSA key.
func ParseEnvelopePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemPublicKey {
		return nil, errorf(ErrKeyFormat, "no PEM %q block holding the envelope public key", pemPublicKey)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "envelope public key: %v", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errorf(ErrKeyFormat, "envelope public key is a %T, not an RSA key", pub)
	}
	if _, err := EnvelopeKeyID(rsaPub); err != nil {
		return nil, err
	}
	return rsaPub, nil
}

// MarshalEnvelopePrivateKeyPEM encodes the envelope private key as a PKCS#8 "PRIVATE KEY"
// block, for the cluster to store encrypted at rest.
func MarshalEnvelopePrivateKeyPEM(priv *rsa.PrivateKey) ([]byte, error) {
	if _, err := EnvelopeKeyID(&priv.PublicKey); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "envelope private key does not encode: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseEnvelopePrivateKeyPEM reads what MarshalEnvelopePrivateKeyPEM wrote.
func ParseEnvelopePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemPrivateKey {
		return nil, errorf(ErrKeyFormat, "no PEM %q block holding the envelope private key", pemPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "envelope private key: %v", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errorf(ErrKeyFormat, "envelope private key is a %T, not an RSA key", k)
	}
	if _, err := EnvelopeKeyID(&rk.PublicKey); err != nil {
		return nil, err
	}
	return rk, nil
}
