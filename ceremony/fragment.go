package ceremony

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/urne-vote/urne/ballot"
)

// Fragment is a holder's unlocked share of the election key. It lives only in the memory of
// the tally process, between UnlockFragment and Rebuild.
type Fragment struct {
	ElectionID string
	CeremonyID []byte
	Holder     string
	// Policy is the canonical text of the policy the fragment was made under.
	Policy string

	path        []byte // x coordinate at each gate from the root down to the holder
	share       []byte // the holder's share of the wrapping key
	wrappedKeys []byte // the election private keys under the wrapping key (same in every fragment)
}

// Fragment plaintext layout (inside the locked file):
//
//	version (1) = 1 | path length (1) | path | share (32) | wrapped keys length (4) | wrapped keys
//
// wrapped keys = GCM nonce (12) | AES-256-GCM under the wrapping key of:
//
//	key count (1) | per key: length (4) | ballot.ElectionPrivateKey.MarshalBinary
const (
	fragmentVersion = 1
	wrapContext     = "urne election keys v1\x00"
	maxWrappedKeys  = 32 << 10
)

func (f *Fragment) marshal() []byte {
	b := []byte{fragmentVersion, byte(len(f.path))}
	b = append(b, f.path...)
	b = append(b, f.share...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.wrappedKeys)))
	return append(b, f.wrappedKeys...)
}

func (f *Fragment) unmarshal(b []byte) error {
	bad := errorf(ErrFileFormat, "the fragment of %q is malformed inside its encryption", f.Holder)
	if len(b) < 2 || b[0] != fragmentVersion {
		return bad
	}
	n := int(b[1])
	if n == 0 || n > maxDepth || len(b) < 2+n+keySize+4 {
		return bad
	}
	f.path = bytes.Clone(b[2 : 2+n])
	f.share = bytes.Clone(b[2+n : 2+n+keySize])
	rest := b[2+n+keySize:]
	wl := binary.BigEndian.Uint32(rest)
	if wl > maxWrappedKeys || int(wl) != len(rest)-4 {
		return bad
	}
	f.wrappedKeys = bytes.Clone(rest[4:])
	return nil
}

// Zero overwrites the fragment's share.
func (f *Fragment) Zero() {
	if f != nil {
		clear(f.share)
	}
}

// UnlockFragment decrypts a locked fragment with its holder's passphrase.
func (f *LockedFile) UnlockFragment(pass []byte) (*Fragment, error) {
	if f.Format != FormatFragment {
		return nil, errorf(ErrFileFormat, "the file of %q is a %s, not a key fragment", f.Owner, f.what())
	}
	plain, err := f.open(pass)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	frag := &Fragment{ElectionID: f.ElectionID, CeremonyID: bytes.Clone(f.CeremonyID), Holder: f.Owner, Policy: f.Policy}
	if err := frag.unmarshal(plain); err != nil {
		return nil, err
	}
	return frag, nil
}

// UnlockSigningKey decrypts a bureau member's locked signing key with their passphrase.
func (f *LockedFile) UnlockSigningKey(pass []byte) (ed25519.PrivateKey, error) {
	if f.Format != FormatSigningKey {
		return nil, errorf(ErrFileFormat, "the file of %q is a %s, not a signing key", f.Owner, f.what())
	}
	seed, err := f.open(pass)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	if len(seed) != ed25519.SeedSize {
		return nil, errorf(ErrFileFormat, "the signing key of %q is %d bytes inside its encryption", f.Owner, len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// wrapElectionKeys encrypts the election private keys under a fresh random wrapping key.
func (c *run) wrapElectionKeys(keys []*ballot.ElectionPrivateKey) (wrapKey, wrapped []byte, err error) {
	blob := []byte{byte(len(keys))}
	defer func() { clear(blob) }()
	for _, k := range keys {
		kb, err := k.MarshalBinary()
		if err != nil {
			return nil, nil, err
		}
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(kb)))
		blob = append(blob, kb...)
		clear(kb)
	}
	wrapKey = make([]byte, keySize)
	_, _ = rand.Read(wrapKey)
	nonce := make([]byte, nonceSize)
	_, _ = rand.Read(nonce)
	wrapped = newGCM(wrapKey).Seal(nonce, nonce, blob, wrapAAD(c.id, c.policy.Digest()))
	return wrapKey, wrapped, nil
}

func wrapAAD(ceremonyID, policyDigest []byte) []byte {
	return append(append([]byte(wrapContext), ceremonyID...), policyDigest...)
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("ceremony: AES key of %d bytes", len(key)))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("ceremony: GCM: " + err.Error())
	}
	return aead
}

// unwrapElectionKeys reverses wrapElectionKeys.
func unwrapElectionKeys(wrapKey, wrapped, ceremonyID, policyDigest []byte) ([]*ballot.ElectionPrivateKey, error) {
	if len(wrapped) < nonceSize {
		return nil, errorf(ErrCorrupt, "the wrapped election keys are truncated")
	}
	blob, err := newGCM(wrapKey).Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], wrapAAD(ceremonyID, policyDigest))
	if err != nil {
		return nil, errorf(ErrCorrupt, "the fragments satisfy the policy but rebuild a key that does not open the election keys: a fragment was altered")
	}
	defer clear(blob)
	return parseKeyBlob(blob)
}

func parseKeyBlob(blob []byte) ([]*ballot.ElectionPrivateKey, error) {
	if len(blob) < 1 {
		return nil, errorf(ErrCorrupt, "the election key set is empty")
	}
	n, rest := int(blob[0]), blob[1:]
	keys := make([]*ballot.ElectionPrivateKey, 0, n)
	for range n {
		if len(rest) < 4 || int(binary.BigEndian.Uint32(rest)) > len(rest)-4 {
			zeroKeys(keys)
			return nil, errorf(ErrCorrupt, "the election key set is truncated")
		}
		l := binary.BigEndian.Uint32(rest)
		k, err := ballot.ParseElectionPrivateKey(rest[4 : 4+l])
		if err != nil {
			zeroKeys(keys)
			return nil, errorf(ErrCorrupt, "election key %d: %v", len(keys)+1, err)
		}
		keys = append(keys, k)
		rest = rest[4+l:]
	}
	return keys, nil
}
