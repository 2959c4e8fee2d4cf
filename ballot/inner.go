package ballot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// Inner ballot layout, sealed on the voter's device:
//
//	version (1) = 1 | suite (1) | election key id (8) | suite body
//
//	SuiteRSA body:  RSA-OAEP-SHA256 of a fresh 32-byte AES key (512) | GCM nonce (12)
//	                | AES-256-GCM of the vote (VoteSize + 16)
//	SuiteHPKE body: HPKE encapsulated key (1120) | HPKE AES-256-GCM ciphertext (VoteSize + 16)
//
// The 10-byte header is bound into every layer (OAEP label and GCM associated data for rsa,
// HPKE info for hpke), so changing the suite or key id makes the ballot undecryptable. Each
// suite has exactly one ballot size.
const (
	innerVersion    = 1
	innerHeaderSize = 1 + 1 + len(KeyID{})
	gcmNonceSize    = 12
	gcmTagSize      = 16
	aesKeySize      = 32
	hpkeEncSize     = 1088 + 32 // ML-KEM-768 ciphertext + X25519 share

	// InnerSizeRSA is the size of every SuiteRSA inner ballot.
	InnerSizeRSA = innerHeaderSize + ElectionRSABits/8 + gcmNonceSize + VoteSize + gcmTagSize
	// InnerSizeHPKE is the size of every SuiteHPKE inner ballot.
	InnerSizeHPKE = innerHeaderSize + hpkeEncSize + VoteSize + gcmTagSize
	// MaxInnerSize is the largest inner ballot of any suite.
	MaxInnerSize = max(InnerSizeRSA, InnerSizeHPKE)
)

// innerContext separates ballot encryption from every other use of the same primitives.
const innerContext = "urne ballot v1\x00"

// InnerSize is the size of an inner ballot of suite s, or 0 for an unknown suite.
func InnerSize(s Suite) int {
	switch s {
	case SuiteRSA:
		return InnerSizeRSA
	case SuiteHPKE:
		return InnerSizeHPKE
	}
	return 0
}

// BallotInfo is what the header of an inner ballot says, readable without any key.
type BallotInfo struct {
	Suite Suite
	KeyID KeyID
}

// InspectBallot checks an inner ballot's version, suite and size and returns its header. It
// never decrypts: the cluster calls it on every cast to refuse malformed ballots.
func InspectBallot(inner []byte) (BallotInfo, error) {
	if len(inner) < innerHeaderSize {
		return BallotInfo{}, errorf(ErrBallotFormat, "inner ballot is %d bytes, shorter than its %d-byte header", len(inner), innerHeaderSize)
	}
	if inner[0] != innerVersion {
		return BallotInfo{}, errorf(ErrBallotFormat, "inner ballot has format version %d; this build reads version %d", inner[0], innerVersion)
	}
	info := BallotInfo{Suite: Suite(inner[1]), KeyID: KeyID(inner[2:innerHeaderSize])}
	want := InnerSize(info.Suite)
	if want == 0 {
		return BallotInfo{}, errorf(ErrBallotFormat, "inner ballot names unknown suite %d", inner[1])
	}
	if len(inner) != want {
		return BallotInfo{}, errorf(ErrBallotFormat, "%s inner ballot is %d bytes; every %s ballot is %d", info.Suite, len(inner), info.Suite, want)
	}
	return info, nil
}

// Fingerprint is the SHA-256 of an inner ballot: its key in the ballot box, the value on the
// voter's receipt, and a leaf of the box's Merkle tree. `sha256sum ballot.bin` computes it.
func Fingerprint(inner []byte) []byte {
	sum := sha256.Sum256(inner)
	return sum[:]
}

// SealBallot encrypts a vote to the election key. It runs on the voter's device.
func SealBallot(pub *ElectionPublicKey, v Vote) ([]byte, error) {
	plain, err := EncodeVote(v)
	if err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errorf(ErrKeyFormat, "no election public key to seal the ballot to")
	}
	header := make([]byte, innerHeaderSize, InnerSize(pub.suite))
	header[0], header[1] = innerVersion, byte(pub.suite)
	copy(header[2:], pub.id[:])
	switch pub.suite {
	case SuiteRSA:
		return sealRSA(pub.rsa, header, plain)
	case SuiteHPKE:
		return sealHPKE(pub.hpke, header, plain)
	}
	return nil, errorf(ErrBallotFormat, "cannot seal to unknown suite %d", pub.suite)
}

func sealRSA(pub *rsa.PublicKey, header, plain []byte) ([]byte, error) {
	key := make([]byte, aesKeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (it aborts the program instead)
	defer clear(key)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, innerLabel(header))
	if err != nil {
		return nil, errorf(ErrKeyFormat, "rsa-oaep wrap of the ballot key: %v", err)
	}
	out := append(header, wrapped...)
	return gcmSeal(out, key, header, plain), nil
}

// gcmSeal appends nonce | AES-256-GCM(plain, aad) to out.
func gcmSeal(out, key, aad, plain []byte) []byte {
	aead := newGCM(key)
	nonce := make([]byte, gcmNonceSize)
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, aad)
}

// newGCM builds AES-256-GCM; the key is always aesKeySize bytes here, so it cannot fail.
func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("ballot: AES key of %d bytes", len(key)))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("ballot: GCM: " + err.Error())
	}
	return aead
}

func sealHPKE(pub hpke.PublicKey, header, plain []byte) ([]byte, error) {
	ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), innerLabel(header), plain)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "hpke seal of the ballot: %v", err)
	}
	return append(header, ct...), nil
}

func innerLabel(header []byte) []byte {
	return append([]byte(innerContext), header...)
}

// OpenBallot decrypts an inner ballot with the election private key and decodes its vote.
// Only the tally calls it, after the election has closed.
func OpenBallot(priv *ElectionPrivateKey, inner []byte) (Vote, error) {
	info, err := InspectBallot(inner)
	if err != nil {
		return Vote{}, err
	}
	if priv == nil || (priv.rsa == nil && priv.hpke == nil) {
		return Vote{}, errorf(ErrKeyFormat, "no election private key (or it has been zeroed)")
	}
	if info.Suite != priv.pub.suite || subtle.ConstantTimeCompare(info.KeyID[:], priv.pub.id[:]) != 1 {
		return Vote{}, errorf(ErrWrongKey, "ballot was sealed to %s election key %s; the key given is %s key %s", info.Suite, info.KeyID, priv.pub.suite, priv.pub.id)
	}
	header, body := inner[:innerHeaderSize], inner[innerHeaderSize:]
	var plain []byte
	if info.Suite == SuiteRSA {
		plain, err = openRSA(priv.rsa, header, body)
	} else {
		plain, err = hpke.Open(priv.hpke, hpke.HKDFSHA256(), hpke.AES256GCM(), innerLabel(header), body)
	}
	if err != nil {
		return Vote{}, errorf(ErrBallotOpen, "%s ballot %x does not decrypt under election key %s: it was altered", info.Suite, Fingerprint(inner)[:8], info.KeyID)
	}
	defer clear(plain)
	return DecodeVote(plain)
}

func openRSA(priv *rsa.PrivateKey, header, body []byte) ([]byte, error) {
	wrappedLen := priv.Size()
	key, err := rsa.DecryptOAEP(sha256.New(), nil, priv, body[:wrappedLen], innerLabel(header))
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if len(key) != aesKeySize {
		return nil, errorf(ErrBallotOpen, "wrapped ballot key is %d bytes", len(key))
	}
	return gcmOpen(key, header, body[wrappedLen:])
}

// gcmOpen opens nonce | ciphertext as gcmSeal wrote it.
func gcmOpen(key, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < gcmNonceSize+gcmTagSize {
		return nil, errorf(ErrBallotOpen, "sealed part is %d bytes", len(sealed))
	}
	return newGCM(key).Open(nil, sealed[:gcmNonceSize], sealed[gcmNonceSize:], aad)
}
