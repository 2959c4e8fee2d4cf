package ballot

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"time"
)

// Receipts are signed with Ed25519: signatures are deterministic and 64 bytes, keys are 32
// bytes, signing takes tens of microseconds on the cast path, and openssl 3 verifies them
// (`openssl pkeyutl -verify -rawin`), so a voter needs no Urne software to check one.

// MaxElectionIDLen bounds the election id on a receipt.
const MaxElectionIDLen = 128

const receiptHeader = "urne-receipt-v1\n"

// Receipt is the accusé de réception the cluster gives a voter at cast time. It names the
// ballot by fingerprint, never the voter: a leaked receipt links no one to a ballot.
type Receipt struct {
	ElectionID  string    `json:"election_id"`
	Fingerprint Hex       `json:"fingerprint"`
	EmargedAt   time.Time `json:"emarged_at"`
}

// SignedReceipt is the receipt as the voter keeps it: the receipt and the cluster's signature
// (standard base64 in JSON).
type SignedReceipt struct {
	Receipt
	Signature []byte `json:"signature"`
}

// Hex is a byte string written as lower-case hex in JSON and text.
type Hex []byte

// MarshalText writes h as hex.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText reads hex.
func (h *Hex) UnmarshalText(b []byte) error {
	out, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("hex value: %w", err)
	}
	*h = out
	return nil
}

// String is h in hex.
func (h Hex) String() string { return hex.EncodeToString(h) }

// Message is the exact text a receipt signature covers (four lines, each ending in "\n"):
//
//	urne-receipt-v1
//	election: <election id>
//	fingerprint: <64 hex digits>
//	emarged-at: <RFC 3339 time in UTC, nanoseconds without trailing zeros>
func (r Receipt) Message() ([]byte, error) {
	if err := checkElectionID(r.ElectionID); err != nil {
		return nil, err
	}
	if len(r.Fingerprint) != sha256Size {
		return nil, errorf(ErrReceipt, "receipt fingerprint is %d bytes; a fingerprint is %d", len(r.Fingerprint), sha256Size)
	}
	if r.EmargedAt.IsZero() {
		return nil, errorf(ErrReceipt, "receipt has no émargement time")
	}
	msg := fmt.Sprintf("%selection: %s\nfingerprint: %x\nemarged-at: %s\n",
		receiptHeader, r.ElectionID, []byte(r.Fingerprint), r.EmargedAt.UTC().Format(time.RFC3339Nano))
	return []byte(msg), nil
}

const sha256Size = 32

func checkElectionID(id string) error {
	if id == "" || len(id) > MaxElectionIDLen {
		return errorf(ErrReceipt, "election id %q must have 1 to %d characters", id, MaxElectionIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return errorf(ErrReceipt, "election id %q: character %q is not a letter, digit or one of ._:@-", id, id[i])
		}
	}
	return nil
}

// SignReceipt signs a receipt with the cluster's Ed25519 receipt key (any crypto.Signer whose
// public key is Ed25519, so the key may live in an HSM).
func SignReceipt(signer crypto.Signer, r Receipt) ([]byte, error) {
	if _, ok := signer.Public().(ed25519.PublicKey); !ok {
		return nil, errorf(ErrKeyFormat, "receipt key is a %T; receipts are signed with Ed25519", signer.Public())
	}
	msg, err := r.Message()
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign receipt: %w", err)
	}
	return sig, nil
}

// VerifyReceipt checks a receipt signature against the cluster's receipt public key.
func VerifyReceipt(pub ed25519.PublicKey, r Receipt, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return errorf(ErrKeyFormat, "receipt public key is %d bytes; an Ed25519 key is %d", len(pub), ed25519.PublicKeySize)
	}
	msg, err := r.Message()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return errorf(ErrReceipt, "receipt signature does not verify for ballot %x of election %q: the receipt was altered or signed by another key", []byte(r.Fingerprint), r.ElectionID)
	}
	return nil
}

// MarshalSigningPublicKeyPEM encodes an Ed25519 public key (the receipt key, a bureau
// member's key) as a PKIX "PUBLIC KEY" block that openssl reads.
func MarshalSigningPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "ed25519 public key does not encode: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParseSigningPublicKeyPEM reads an Ed25519 public key from a PKIX "PUBLIC KEY" block.
func ParseSigningPublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemPublicKey {
		return nil, errorf(ErrKeyFormat, "no PEM %q block holding an Ed25519 public key", pemPublicKey)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errorf(ErrKeyFormat, "ed25519 public key: %v", err)
	}
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, errorf(ErrKeyFormat, "public key is a %T, not an Ed25519 key", pub)
	}
	return edPub, nil
}
