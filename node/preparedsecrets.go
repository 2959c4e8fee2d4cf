package node

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// A prepared secret is the bcrypt hash of a voter's secret, computed ahead by the organizer
// (`urne election prepare`): at cost 10 a million secrets take about a day of one core, which
// no import can wait for. The receiving node peppers it by sealing it (AES-256-GCM) under a
// key derived from the election's gossip key, which every node holds outside its data
// directory: a copy of the state database or of the log alone gives no hash to attack.
//
// Stored form: sealedSecretPrefix, then base64 of nonce | ciphertext. The nonce is an HMAC
// of the bcrypt hash, so importing the same prepared roll twice stores the same bytes (the
// import stays idempotent and reports nothing rectified).
const (
	sealedSecretPrefix = "$ubs1$" // urne, bcrypt, sealed, version 1 (fsm accepts it)
	pepperSealLabel    = "urne voter secret seal v1"
	pepperNonceLabel   = "urne voter secret seal nonce v1"
)

// sealedSecrets seals and opens prepared secrets.
type sealedSecrets struct {
	aead     cipher.AEAD
	nonceKey []byte
}

func newSealedSecrets(gossipKey []byte) (*sealedSecrets, error) {
	key, err := hkdf.Key(sha256.New, gossipKey, nil, pepperSealLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the secret seal key: %w", err)
	}
	nonceKey, err := hkdf.Key(sha256.New, gossipKey, nil, pepperNonceLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the secret seal key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealedSecrets{aead: aead, nonceKey: nonceKey}, nil
}

// PrepareSecret is the slow hash `urne election prepare` computes for each voter: bcrypt of the
// secret as the voter will type it (surrounding spaces ignored), at cost.
func PrepareSecret(secret string, cost int) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(strings.TrimSpace(secret)), cost)
}

// nonceMAC is the HMAC that derives the nonces of seal; one per goroutine.
func (s *sealedSecrets) nonceMAC() hash.Hash { return hmac.New(sha256.New, s.nonceKey) }

// seal checks a prepared hash (a bcrypt hash of at least minCost) and seals it; mac is from
// nonceMAC.
func (s *sealedSecrets) seal(mac hash.Hash, prepared string, minCost int) ([]byte, error) {
	hashed := []byte(prepared)
	cost, err := bcrypt.Cost(hashed)
	if err != nil || len(prepared) != 60 {
		return nil, errors.New("secret_bcrypt is not a bcrypt hash (prepare the roll with `urne election prepare`)")
	}
	if cost < minCost {
		return nil, fmt.Errorf("secret_bcrypt has cost %d, this cluster requires at least %d", cost, minCost)
	}
	mac.Reset()
	mac.Write(hashed)
	var sum [sha256.Size]byte
	nonce := mac.Sum(sum[:0])[:s.aead.NonceSize()]
	var buf [128]byte // nonce, the 60-byte hash and the tag
	sealed := s.aead.Seal(append(buf[:0], nonce...), nonce, hashed, []byte(pepperSealLabel))
	out := make([]byte, 0, len(sealedSecretPrefix)+base64.RawStdEncoding.EncodedLen(len(sealed)))
	return base64.RawStdEncoding.AppendEncode(append(out, sealedSecretPrefix...), sealed), nil
}

// open returns the bcrypt hash inside a sealed secret; ok is false for another form.
func (s *sealedSecrets) open(stored []byte) (hash []byte, ok bool, err error) {
	rest, found := bytes.CutPrefix(stored, []byte(sealedSecretPrefix))
	if !found {
		return nil, false, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(string(rest))
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, true, errors.New("sealed secret is malformed")
	}
	n := s.aead.NonceSize()
	hash, err = s.aead.Open(nil, raw[:n], raw[n:], []byte(pepperSealLabel))
	if err != nil {
		return nil, true, errors.New("sealed secret does not open with this election's pepper key")
	}
	return hash, true, nil
}

// sealPrepared replaces every prepared hash by its sealed form; a voter gives a secret or a
// prepared hash, never both.
func (s *secrets) sealPrepared(plain, prepared []string, records []*fsmpb.VoterRecord) error {
	var errs []error
	var mac hash.Hash
	for i, p := range prepared {
		if p == "" {
			continue
		}
		if mac == nil {
			mac = s.sealed.nonceMAC()
		}
		if plain[i] != "" {
			errs = append(errs, fmt.Errorf("voter %q: give secret or secret_bcrypt, not both", records[i].VoterId))
			continue
		}
		sealed, err := s.sealed.seal(mac, p, s.cost)
		if err != nil {
			errs = append(errs, fmt.Errorf("voter %q: %w", records[i].VoterId, err))
			continue
		}
		records[i].SecretHash = sealed
	}
	return joinProblems(errs)
}
