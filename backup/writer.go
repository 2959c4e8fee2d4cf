package backup

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Writer seals a state stream into an archive on w, one chunk at a time: memory use is one
// chunk whatever the size of the state.
type Writer struct {
	w      io.Writer
	h      hash.Hash
	seal   *sealing
	buf    []byte // plaintext of the chunk being filled, capacity ChunkSize+tagSize
	size   uint64
	closed bool
	err    error
}

// NewWriter writes the archive's prefix and header to w and returns a writer of its content.
// The header's format, key and salt are filled in here; the completed header is returned.
func NewWriter(w io.Writer, s *Secret, h Header) (*Writer, Header, error) {
	info, salt, keys, err := s.seal()
	if err != nil {
		return nil, h, err
	}
	h.Format, h.Key, h.Salt = FormatVersion, info, salt
	if err := h.check(); err != nil {
		return nil, h, fmt.Errorf("backup header: %w", err)
	}
	payload, err := encodeHeader(h)
	if err != nil {
		return nil, h, err
	}
	bw := &Writer{w: w, h: sha256.New(), buf: make([]byte, 0, ChunkSize+tagSize)}
	prefix := binary.BigEndian.AppendUint32([]byte(magic), FormatVersion)
	if err := bw.raw(prefix); err != nil {
		return nil, h, err
	}
	if err := bw.frame(kindHeader, payload); err != nil {
		return nil, h, err
	}
	var hh [sha256.Size]byte
	copy(hh[:], bw.h.Sum(nil))
	bw.seal = newSealing(keys.data, hh)
	return bw, h, nil
}

// Write buffers p and seals every full chunk.
func (bw *Writer) Write(p []byte) (int, error) {
	if bw.closed {
		return 0, errors.New("backup: write after close")
	}
	written := 0
	for len(p) > 0 && bw.err == nil {
		n := copy(bw.buf[len(bw.buf):ChunkSize], p)
		bw.buf = bw.buf[:len(bw.buf)+n]
		p, written = p[n:], written+n
		bw.size += uint64(n)
		if len(bw.buf) == ChunkSize {
			bw.err = bw.sealed(kindData, bw.buf)
			bw.buf = bw.buf[:0]
		}
	}
	return written, bw.err
}

// Size is the number of plaintext bytes written so far.
func (bw *Writer) Size() uint64 { return bw.size }

// Close seals the final chunk and the summary (its Size is set here), then writes the
// checksum. It does not close w. Without Close the archive is unreadable.
func (bw *Writer) Close(sum Summary) error {
	if bw.closed {
		return bw.err
	}
	bw.closed = true
	if bw.err != nil {
		return bw.err
	}
	sum.Size = bw.size
	js, err := json.Marshal(sum)
	if err != nil {
		return fmt.Errorf("encode backup summary: %w", err)
	}
	if len(js) > maxSummary {
		return fmt.Errorf("backup summary of %d bytes exceeds %d", len(js), maxSummary)
	}
	if bw.err = bw.sealed(kindEnd, bw.buf); bw.err != nil {
		return bw.err
	}
	if bw.err = bw.sealed(kindSummary, js); bw.err != nil {
		return bw.err
	}
	bw.err = bw.frame(kindChecksum, bw.h.Sum(nil))
	return bw.err
}

// sealed encrypts plain (in place when it is bw.buf) and writes it as a frame of kind.
func (bw *Writer) sealed(kind byte, plain []byte) error {
	bw.seal.prepare(kind)
	out := bw.seal.aead.Seal(plain[:0], bw.seal.nonce[:], plain, bw.seal.aad[:])
	bw.seal.counter++
	return bw.frame(kind, out)
}

func (bw *Writer) frame(kind byte, payload []byte) error {
	head := make([]byte, frameHead)
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if err := bw.raw(head); err != nil {
		return err
	}
	return bw.raw(payload)
}

func (bw *Writer) raw(p []byte) error {
	if _, err := bw.w.Write(p); err != nil {
		return fmt.Errorf("write backup archive: %w", err)
	}
	bw.h.Write(p)
	return nil
}
