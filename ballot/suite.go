package ballot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Suite identifies the public-key scheme of an inner ballot. Its value is the suite byte of the
// wire format, so it never changes once released.
type Suite uint8

const (
	// SuiteRSA: RSA-OAEP-4096 with SHA-256 wraps a fresh AES-256-GCM key that encrypts the
	// vote (the scheme of the reference platform).
	SuiteRSA Suite = 1
	// SuiteHPKE: HPKE (RFC 9180) base mode with the ML-KEM-768 + X25519 hybrid KEM (X-Wing),
	// HKDF-SHA256 and AES-256-GCM: secure against a future quantum adversary as long as either
	// ML-KEM or X25519 holds.
	SuiteHPKE Suite = 2
)

// Suites lists every suite this build seals and opens, in suite-id order.
var Suites = []Suite{SuiteRSA, SuiteHPKE}

// String is the suite's name in files and messages: "rsa" or "hpke".
func (s Suite) String() string {
	switch s {
	case SuiteRSA:
		return "rsa"
	case SuiteHPKE:
		return "hpke"
	}
	return fmt.Sprintf("suite-%d", uint8(s))
}

// Known reports whether this build implements s.
func (s Suite) Known() bool { return s == SuiteRSA || s == SuiteHPKE }

// ParseSuite reads a suite name as String writes it.
func ParseSuite(name string) (Suite, error) {
	for _, s := range Suites {
		if strings.EqualFold(name, s.String()) {
			return s, nil
		}
	}
	return 0, errorf(ErrBallotFormat, "unknown ballot suite %q: this build knows rsa and hpke", name)
}

// KeyID names a public key in ballots and envelopes: the first 8 bytes of the SHA-256 of the
// key's encoding. It lets an opener say "sealed to key X, I hold key Y" instead of failing
// with a bare decryption error; it is not a security boundary.
type KeyID [8]byte

func keyIDOf(encoded []byte) KeyID {
	sum := sha256.Sum256(encoded)
	return KeyID(sum[:8])
}

// String is the key id in hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }
