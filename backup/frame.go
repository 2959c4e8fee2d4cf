package backup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Archive layout (integers big-endian):
//
//	magic "URNEBACK" | format version u32
//	frame*            kind u8 | length u32 | payload
//
// Frames, in this order:
//
//	'H'  header JSON | SHA-256 of the JSON                       once, first
//	'D'  sealed chunk of exactly ChunkSize plaintext bytes       zero or more
//	'E'  sealed final chunk of 0 to ChunkSize plaintext bytes    once
//	'M'  sealed summary JSON (size, records, digest, counts)     once
//	'S'  SHA-256 of every byte of the file before this frame    once, last
//
// Sealed frames are AES-256-GCM under the archive's data key, with nonce 0 (4) | counter (8)
// and associated data SHA-256(magic .. header frame) | counter (8) | kind (1): a chunk moved,
// dropped, repeated or carried to another archive does not authenticate, and the 'E' frame
// proves the data ended where the writer ended it.
const (
	magic        = "URNEBACK"
	prefixSize   = len(magic) + 4
	frameHead    = 5
	kindHeader   = 'H'
	kindData     = 'D'
	kindEnd      = 'E'
	kindSummary  = 'M'
	kindChecksum = 'S'
	// ChunkSize is the plaintext size of every sealed data chunk but the last.
	ChunkSize  = 256 << 10
	tagSize    = 16
	nonceSize  = 12
	maxSummary = 4 << 10
)

// frameLimits bounds the payload of each kind, so that no length field makes a reader
// allocate more than one chunk.
func frameLimits(kind byte) (least, most int, ok bool) {
	switch kind {
	case kindHeader:
		return sha256.Size + 2, maxHeaderJSON + sha256.Size, true
	case kindData:
		return ChunkSize + tagSize, ChunkSize + tagSize, true
	case kindEnd:
		return tagSize, ChunkSize + tagSize, true
	case kindSummary:
		return tagSize + 2, maxSummary + tagSize, true
	case kindChecksum:
		return sha256.Size, sha256.Size, true
	}
	return 0, 0, false
}

func kindName(kind byte) string {
	switch kind {
	case kindHeader:
		return "header"
	case kindData:
		return "data chunk"
	case kindEnd:
		return "final chunk"
	case kindSummary:
		return "summary"
	case kindChecksum:
		return "checksum"
	}
	return fmt.Sprintf("unknown frame %#x", kind)
}

func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("backup: AES with a %d-byte key: %v", len(key), err)) // cannot happen
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("backup: GCM: %v", err)) // cannot happen
	}
	return aead
}

// sealing is what a writer and a reader share to seal or open frame number counter.
type sealing struct {
	aead       cipher.AEAD
	headerHash [sha256.Size]byte
	counter    uint64
	nonce      [nonceSize]byte
	aad        [sha256.Size + 9]byte
}

func newSealing(key []byte, headerHash [sha256.Size]byte) *sealing {
	s := &sealing{aead: newAEAD(key), headerHash: headerHash}
	copy(s.aad[:], headerHash[:])
	return s
}

// prepare sets nonce and associated data for the next sealed frame of the given kind.
func (s *sealing) prepare(kind byte) {
	binary.BigEndian.PutUint64(s.nonce[4:], s.counter)
	binary.BigEndian.PutUint64(s.aad[sha256.Size:], s.counter)
	s.aad[sha256.Size+8] = kind
}

// frameReader reads frames, hashing every byte before the checksum frame, and counting bytes
// for error messages.
type frameReader struct {
	r      io.Reader
	h      hash.Hash
	offset int64
	buf    []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: r, h: sha256.New()}
}

// readPrefix reads and checks the magic and format version.
func (fr *frameReader) readPrefix() error {
	p := make([]byte, prefixSize)
	if err := fr.full(p, "its first bytes"); err != nil {
		return err
	}
	if string(p[:len(magic)]) != magic {
		return errorf(ErrNotArchive, "the file starts with %q, not %q", p[:len(magic)], magic)
	}
	if v := binary.BigEndian.Uint32(p[len(magic):]); v != FormatVersion {
		return errorf(ErrVersion, "the archive has format version %d; this build reads version %d", v, FormatVersion)
	}
	fr.h.Write(p)
	return nil
}

// next reads one frame. The payload is valid until the next call. The checksum frame is
// returned with the hash of everything before it in sum.
func (fr *frameReader) next() (kind byte, payload []byte, sum []byte, err error) {
	head := make([]byte, frameHead)
	at := fr.offset
	if err := fr.full(head, "a frame header"); err != nil {
		return 0, nil, nil, err
	}
	kind = head[0]
	n := int64(binary.BigEndian.Uint32(head[1:]))
	least, most, ok := frameLimits(kind)
	if !ok {
		return 0, nil, nil, errorf(ErrCorrupt, "byte %d: %s", at, kindName(kind))
	}
	if n < int64(least) || n > int64(most) {
		return 0, nil, nil, errorf(ErrCorrupt, "byte %d: %s of %d bytes, want %d to %d", at, kindName(kind), n, least, most)
	}
	if kind == kindChecksum {
		sum = fr.h.Sum(nil)
	} else {
		fr.h.Write(head)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	payload = fr.buf[:n]
	if err := fr.full(payload, "a "+kindName(kind)); err != nil {
		return 0, nil, nil, err
	}
	if kind != kindChecksum {
		fr.h.Write(payload)
	}
	return kind, payload, sum, nil
}

// full reads len(p) bytes; a short read is ErrTruncated, naming what was being read.
func (fr *frameReader) full(p []byte, what string) error {
	n, err := io.ReadFull(fr.r, p)
	fr.offset += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(ErrTruncated, "the file ends after %d bytes, in %s", fr.offset, what)
	}
	if err != nil {
		return fmt.Errorf("read backup archive at byte %d: %w", fr.offset, err)
	}
	return nil
}

// expectEOF checks that nothing follows the checksum frame.
func (fr *frameReader) expectEOF() error {
	var one [1]byte
	n, err := fr.r.Read(one[:])
	for n == 0 && err == nil {
		n, err = fr.r.Read(one[:])
	}
	if n > 0 {
		return errorf(ErrCorrupt, "bytes follow the checksum frame at byte %d", fr.offset)
	}
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("read backup archive at byte %d: %w", fr.offset, err)
	}
	return nil
}

// headerFrame reads the first frame and returns the header and the hash that binds every
// sealed frame to it.
func (fr *frameReader) headerFrame() (Header, [sha256.Size]byte, error) {
	var hh [sha256.Size]byte
	kind, payload, _, err := fr.next()
	if err != nil {
		return Header{}, hh, err
	}
	if kind != kindHeader {
		return Header{}, hh, errorf(ErrCorrupt, "the first frame is a %s, not the header", kindName(kind))
	}
	h, err := decodeHeader(payload)
	if err != nil {
		return h, hh, err
	}
	copy(hh[:], fr.h.Sum(nil))
	return h, hh, nil
}
