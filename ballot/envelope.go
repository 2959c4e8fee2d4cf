package ballot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
)

// Envelope layout, sealed on the voter's device around the inner ballot:
//
//	version (1) = 1 | suite (1) = 1 | envelope key id (8) | nonce (16)
//	| RSA-OAEP-SHA256 (2048-bit) of a fresh 32-byte AES key (256) | GCM nonce (12)
//	| AES-256-GCM of the inner ballot (inner size + 16)
//
// The GCM associated data is the 26-byte header followed by the voting session id (2-byte
// length, then its bytes): an envelope opens only for the session it was sealed for, and its
// nonce cannot be swapped. The cluster checks the nonce it issued for the session, which stops a
// replay within the session too.
const (
	envelopeVersion   = 1
	envelopeSuiteRSA  = 1
	envelopeHeaderLen = 1 + 1 + len(KeyID{}) + EnvelopeNonceSize

	// EnvelopeNonceSize is the size of the nonce bound into every envelope.
	EnvelopeNonceSize = 16
	// MaxSessionIDLen bounds a voting session id.
	MaxSessionIDLen = 256
	// MaxEnvelopeSize is the largest envelope of any inner suite.
	MaxEnvelopeSize = envelopeHeaderLen + EnvelopeRSABits/8 + gcmNonceSize + MaxInnerSize + gcmTagSize
)

const envelopeContext = "urne envelope v1\x00"

// EnvelopeSize is the size of an envelope around an inner ballot of suite s, or 0.
func EnvelopeSize(s Suite) int {
	if n := InnerSize(s); n > 0 {
		return envelopeHeaderLen + EnvelopeRSABits/8 + gcmNonceSize + n + gcmTagSize
	}
	return 0
}

// SealEnvelope encrypts an inner ballot to the cluster's envelope key, bound to the voting
// session and to the nonce the cluster issued for it.
func SealEnvelope(envelopePub *rsa.PublicKey, sessionID string, nonce, inner []byte) ([]byte, error) {
	id, err := EnvelopeKeyID(envelopePub)
	if err != nil {
		return nil, err
	}
	if err := checkSession(sessionID); err != nil {
		return nil, err
	}
	if len(nonce) != EnvelopeNonceSize {
		return nil, errorf(ErrEnvelopeFormat, "envelope nonce is %d bytes; it must be %d", len(nonce), EnvelopeNonceSize)
	}
	info, err := InspectBallot(inner)
	if err != nil {
		return nil, err
	}
	out := make([]byte, envelopeHeaderLen, EnvelopeSize(info.Suite))
	out[0], out[1] = envelopeVersion, envelopeSuiteRSA
	copy(out[2:], id[:])
	copy(out[2+len(id):], nonce)
	header := out[:envelopeHeaderLen]
	key := make([]byte, aesKeySize)
	_, _ = rand.Read(key)
	defer clear(key)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, envelopePub, key, envelopeLabel(header))
	if err != nil {
		return nil, errorf(ErrKeyFormat, "rsa-oaep wrap of the envelope key: %v", err)
	}
	out = append(out, wrapped...)
	return gcmSeal(out, key, envelopeAAD(header, sessionID), inner), nil
}

// OpenEnvelope decrypts an envelope with the cluster's envelope key for the given voting
// session and returns the inner ballot and the envelope's nonce. It checks the inner ballot's
// format and size but never decrypts it: the cluster cannot read the vote.
func OpenEnvelope(envelopePriv *rsa.PrivateKey, sessionID string, envelope []byte) (inner, nonce []byte, err error) {
	if err := checkEnvelopeShape(envelope); err != nil {
		return nil, nil, err
	}
	if err := checkSession(sessionID); err != nil {
		return nil, nil, err
	}
	if envelopePriv == nil {
		return nil, nil, errorf(ErrKeyFormat, "no envelope private key")
	}
	id, err := EnvelopeKeyID(&envelopePriv.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	header := envelope[:envelopeHeaderLen]
	if got := header[2 : 2+len(id)]; subtle.ConstantTimeCompare(got, id[:]) != 1 {
		return nil, nil, errorf(ErrWrongKey, "envelope was sealed to envelope key %x; this node holds key %s", got, id)
	}
	inner, err = openEnvelopeBody(envelopePriv, header, sessionID, envelope[envelopeHeaderLen:])
	if err != nil {
		return nil, nil, err
	}
	if _, err := InspectBallot(inner); err != nil {
		return nil, nil, err
	}
	nonce = append([]byte(nil), header[2+len(id):]...)
	return inner, nonce, nil
}

// checkEnvelopeShape checks version, suite and that the size is that of an envelope around a
// ballot of some known suite, before any expensive RSA operation.
func checkEnvelopeShape(envelope []byte) error {
	if len(envelope) < envelopeHeaderLen {
		return errorf(ErrEnvelopeFormat, "envelope is %d bytes, shorter than its %d-byte header", len(envelope), envelopeHeaderLen)
	}
	if envelope[0] != envelopeVersion {
		return errorf(ErrEnvelopeFormat, "envelope has format version %d; this build reads version %d", envelope[0], envelopeVersion)
	}
	if envelope[1] != envelopeSuiteRSA {
		return errorf(ErrEnvelopeFormat, "envelope names unknown suite %d", envelope[1])
	}
	for _, s := range Suites {
		if len(envelope) == EnvelopeSize(s) {
			return nil
		}
	}
	return errorf(ErrEnvelopeFormat, "envelope is %d bytes; envelopes are %d (rsa ballot) or %d (hpke ballot)", len(envelope), EnvelopeSize(SuiteRSA), EnvelopeSize(SuiteHPKE))
}

func openEnvelopeBody(priv *rsa.PrivateKey, header []byte, sessionID string, body []byte) ([]byte, error) {
	wrappedLen := priv.Size()
	key, err := rsa.DecryptOAEP(sha256.New(), nil, priv, body[:wrappedLen], envelopeLabel(header))
	if err == nil && len(key) == aesKeySize {
		defer clear(key)
		var inner []byte
		if inner, err = gcmOpen(key, envelopeAAD(header, sessionID), body[wrappedLen:]); err == nil {
			return inner, nil
		}
	}
	return nil, errorf(ErrEnvelopeOpen, "envelope does not open for voting session %q: it was sealed for another session, or altered", sessionID)
}

func checkSession(sessionID string) error {
	if sessionID == "" || len(sessionID) > MaxSessionIDLen {
		return errorf(ErrSessionID, "voting session id must have 1 to %d bytes; it has %d", MaxSessionIDLen, len(sessionID))
	}
	return nil
}

func envelopeLabel(header []byte) []byte {
	return append([]byte(envelopeContext), header...)
}

func envelopeAAD(header []byte, sessionID string) []byte {
	aad := make([]byte, 0, len(envelopeContext)+len(header)+2+len(sessionID))
	aad = append(append(aad, envelopeContext...), header...)
	aad = binary.BigEndian.AppendUint16(aad, uint16(len(sessionID)))
	return append(aad, sessionID...)
}
