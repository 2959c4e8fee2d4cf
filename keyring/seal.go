package keyring

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// Sealed value layout:
//
//	version (1) | data key id (4, big endian) | random nonce (12) | GCM ciphertext and tag
//
// The version byte and key id are prepended to the caller's associated data, so neither can be
// changed without the tag failing.
const (
	sealVersion   = 1
	sealHeaderLen = 1 + 4
	nonceSize     = 12
	tagSize       = 16
	// SealOverhead is the number of bytes Seal adds to a plaintext.
	SealOverhead = sealHeaderLen + nonceSize + tagSize
)

// aadPool recycles the buffer that joins a header and the caller's associated data, so the
// hot paths allocate nothing beyond their output.
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func joinAAD(header, aad []byte) *[]byte {
	p := aadPool.Get().(*[]byte)
	*p = append(append((*p)[:0], header...), aad...)
	return p
}

func releaseAAD(p *[]byte) {
	if cap(*p) <= 4096 { // let an occasional huge AAD be collected instead of pinned
		aadPool.Put(p)
	}
}

// Seal encrypts plaintext under the primary data key, binding it to aad (typically the
// storage location, such as "raft-log/42"). The same aad must be given to Open.
func (k *Keyring) Seal(aad, plaintext []byte) []byte {
	return k.AppendSeal(make([]byte, 0, len(plaintext)+SealOverhead), aad, plaintext)
}

// AppendSeal is Seal appending the ciphertext to dst. plaintext must not overlap dst.
func (k *Keyring) AppendSeal(dst, aad, plaintext []byte) []byte {
	set := k.set.Load()
	ret, out := grow(dst, SealOverhead+len(plaintext))
	out[0] = sealVersion
	binary.BigEndian.PutUint32(out[1:sealHeaderLen], set.primary)
	nonce := out[sealHeaderLen : sealHeaderLen+nonceSize]
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (it aborts the program instead)
	full := joinAAD(out[:sealHeaderLen], aad)
	set.seal.Seal(out[sealHeaderLen+nonceSize:sealHeaderLen+nonceSize], nonce, plaintext, *full)
	releaseAAD(full)
	return ret
}

// Open decrypts a ciphertext made by Seal with the same aad, under whichever data key it names.
func (k *Keyring) Open(aad, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < SealOverhead {
		return nil, errorf(ErrShortCiphertext, "ciphertext for %q is %d bytes, shorter than the %d-byte minimum", aad, len(ciphertext), SealOverhead)
	}
	if ciphertext[0] != sealVersion {
		return nil, errorf(ErrVersion, "ciphertext for %q has format version %d; this build reads version %d", aad, ciphertext[0], sealVersion)
	}
	id := binary.BigEndian.Uint32(ciphertext[1:sealHeaderLen])
	aead, ok := k.set.Load().aeads[id]
	if !ok {
		return nil, errorf(ErrUnknownKeyID, "ciphertext for %q is sealed with data key %d, which this keyring does not hold", aad, id)
	}
	full := joinAAD(ciphertext[:sealHeaderLen], aad)
	defer releaseAAD(full)
	nonce := ciphertext[sealHeaderLen : sealHeaderLen+nonceSize]
	plaintext, err := aead.Open(nil, nonce, ciphertext[sealHeaderLen+nonceSize:], *full)
	if err != nil {
		return nil, errorf(ErrDecrypt, "ciphertext for %q does not authenticate under key %d", aad, id)
	}
	return plaintext, nil
}

// grow extends dst by n bytes, returning the whole slice and the n new bytes.
func grow(dst []byte, n int) (whole, tail []byte) {
	total := len(dst) + n
	if cap(dst) >= total {
		whole = dst[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, dst)
	}
	return whole, whole[len(dst):]
}
