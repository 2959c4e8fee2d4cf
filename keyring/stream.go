package keyring

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Encrypted stream layout, for snapshots and backups:
//
//	header: version (1) | data key id (4) | random stream id (8)
//	chunks: AES-256-GCM of ChunkSize plaintext bytes each, then one final chunk of
//	        0 to ChunkSize-1 plaintext bytes
//
// Chunk i uses nonce = stream id | i (4 bytes, big endian) and associated data
// header | aad | i (4 bytes) | final flag (1 byte). A full chunk is never final and the final
// chunk is never full, so the reader tells them apart by length alone, and the ciphertext size
// determines the plaintext size exactly. Reordered, dropped, truncated or altered chunks fail
// authentication or end the stream without a final chunk.
const (
	streamVersion   = 2
	streamHeaderLen = 1 + 4 + 8
	// ChunkSize is the plaintext size of every chunk of an encrypted stream but the last.
	ChunkSize   = 64 << 10
	sealedChunk = ChunkSize + tagSize
	chunkSuffix = 4 + 1 // counter and final flag at the end of a chunk's associated data
)

// CiphertextSize returns the size of the encrypted stream of a plaintext of the given size.
func CiphertextSize(plaintextSize int64) int64 {
	if plaintextSize < 0 {
		panic(fmt.Sprintf("keyring: negative plaintext size %d", plaintextSize))
	}
	return streamHeaderLen + plaintextSize + (plaintextSize/ChunkSize+1)*tagSize
}

// PlaintextSize returns the plaintext size of an encrypted stream of the given size; it is the
// exact inverse of CiphertextSize and fails for sizes no stream can have.
func PlaintextSize(ciphertextSize int64) (int64, error) {
	body := ciphertextSize - streamHeaderLen
	if body < tagSize {
		return 0, errorf(ErrStreamSize, "%d bytes is too short for an encrypted stream (minimum %d)", ciphertextSize, streamHeaderLen+tagSize)
	}
	full := body / sealedChunk
	last := body - full*sealedChunk
	if last < tagSize {
		return 0, errorf(ErrStreamSize, "%d bytes cannot be the size of an encrypted stream (its final chunk would be %d bytes)", ciphertextSize, last)
	}
	return full*ChunkSize + last - tagSize, nil
}

// streamState is what a writer and a reader share: the key, the nonce and the chunk AAD.
type streamState struct {
	aead    cipher.AEAD
	header  [streamHeaderLen]byte
	aad     []byte // header | caller aad | counter | final flag
	label   []byte // caller aad, for error messages
	nonce   [nonceSize]byte
	counter uint32
}

func newStreamState(aead cipher.AEAD, header []byte, aad []byte) *streamState {
	s := &streamState{aead: aead, label: append([]byte(nil), aad...)}
	copy(s.header[:], header)
	s.aad = make([]byte, 0, streamHeaderLen+len(aad)+chunkSuffix)
	s.aad = append(append(append(s.aad, header...), aad...), make([]byte, chunkSuffix)...)
	copy(s.nonce[:8], header[5:streamHeaderLen])
	return s
}

func (s *streamState) keyID() uint32 { return binary.BigEndian.Uint32(s.header[1:5]) }

// prepare sets the counter and final flag for the next chunk in both nonce and AAD.
func (s *streamState) prepare(final bool) {
	binary.BigEndian.PutUint32(s.nonce[8:], s.counter)
	tail := s.aad[len(s.aad)-chunkSuffix:]
	binary.BigEndian.PutUint32(tail[:4], s.counter)
	tail[4] = 0
	if final {
		tail[4] = 1
	}
}

// streamWriter buffers one chunk of plaintext and seals it in place.
type streamWriter struct {
	*streamState
	w             io.Writer
	buf           []byte // plaintext so far, capacity sealedChunk
	headerWritten bool
	closed        bool
	err           error
}

// NewWriter returns a writer that encrypts everything written to it onto w under the primary
// data key, bound to aad. Close writes the final chunk (it does not close w); without it the
// stream is unreadable. Memory use is one chunk.
func (k *Keyring) NewWriter(w io.Writer, aad []byte) io.WriteCloser {
	set := k.set.Load()
	header := make([]byte, streamHeaderLen)
	header[0] = streamVersion
	binary.BigEndian.PutUint32(header[1:5], set.primary)
	_, _ = rand.Read(header[5:]) // crypto/rand.Read never fails (it aborts the program instead)
	return &streamWriter{streamState: newStreamState(set.seal, header, aad), w: w, buf: make([]byte, 0, sealedChunk)}
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	if sw.closed {
		return 0, ErrClosed
	}
	written := 0
	for len(p) > 0 && sw.err == nil {
		n := copy(sw.buf[len(sw.buf):ChunkSize], p)
		sw.buf = sw.buf[:len(sw.buf)+n]
		p, written = p[n:], written+n
		if len(sw.buf) == ChunkSize {
			sw.err = sw.flush(false)
		}
	}
	return written, sw.err
}

// Close seals and writes the final chunk.
func (sw *streamWriter) Close() error {
	if sw.closed {
		return sw.err
	}
	sw.closed = true
	if sw.err == nil {
		sw.err = sw.flush(true)
	}
	return sw.err
}

func (sw *streamWriter) flush(final bool) error {
	if !sw.headerWritten {
		if _, err := sw.w.Write(sw.header[:]); err != nil {
			return fmt.Errorf("write encrypted stream header: %w", err)
		}
		sw.headerWritten = true
	}
	if sw.counter == ^uint32(0) && !final {
		return errors.New("encrypted stream too long: chunk counter exhausted")
	}
	sw.prepare(final)
	sealed := sw.aead.Seal(sw.buf[:0], sw.nonce[:], sw.buf, sw.aad)
	if _, err := sw.w.Write(sealed); err != nil {
		return fmt.Errorf("write encrypted stream chunk %d: %w", sw.counter, err)
	}
	sw.counter++
	sw.buf = sw.buf[:0]
	return nil
}

// streamReader reads one sealed chunk at a time and hands out its plaintext.
type streamReader struct {
	*streamState
	r     io.Reader
	buf   []byte // capacity sealedChunk
	plain []byte // decrypted bytes not yet read
	done  bool   // final chunk opened
	err   error
}

// NewReader reads the stream header from r and returns a reader of the plaintext. Every
// chunk is authenticated before any of its bytes are returned; a stream that was cut short,
// reordered or altered yields an error (never a silent io.EOF).
func (k *Keyring) NewReader(r io.Reader, aad []byte) (io.Reader, error) {
	header := make([]byte, streamHeaderLen)
	if _, err := io.ReadFull(r, header); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errorf(ErrTruncated, "encrypted stream for %q is truncated in its header", aad)
		}
		return nil, fmt.Errorf("read encrypted stream header for %q: %w", aad, err)
	}
	if header[0] != streamVersion {
		return nil, errorf(ErrVersion, "encrypted stream for %q has format version %d; this build reads version %d", aad, header[0], streamVersion)
	}
	id := binary.BigEndian.Uint32(header[1:5])
	aead, ok := k.set.Load().aeads[id]
	if !ok {
		return nil, errorf(ErrUnknownKeyID, "encrypted stream for %q is sealed with data key %d, which this keyring does not hold", aad, id)
	}
	return &streamReader{streamState: newStreamState(aead, header, aad), r: r, buf: make([]byte, sealedChunk)}, nil
}

func (sr *streamReader) Read(p []byte) (int, error) {
	for len(sr.plain) == 0 {
		switch {
		case sr.err != nil:
			return 0, sr.err
		case sr.done:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		sr.err = sr.next()
	}
	n := copy(p, sr.plain)
	sr.plain = sr.plain[n:]
	return n, nil
}

// next reads and opens one chunk. A short read means this is the final chunk.
func (sr *streamReader) next() error {
	n, err := io.ReadFull(sr.r, sr.buf)
	final := errors.Is(err, io.ErrUnexpectedEOF)
	switch {
	case errors.Is(err, io.EOF):
		return errorf(ErrTruncated, "encrypted stream for %q ends after chunk %d without its final chunk", sr.label, sr.counter)
	case err != nil && !final:
		return fmt.Errorf("read encrypted stream for %q: %w", sr.label, err)
	case n < tagSize:
		return errorf(ErrTruncated, "encrypted stream for %q is truncated in chunk %d", sr.label, sr.counter)
	}
	sr.prepare(final)
	plain, err := sr.aead.Open(sr.buf[:0], sr.nonce[:], sr.buf[:n], sr.aad)
	if err != nil {
		return errorf(ErrDecrypt, "chunk %d of encrypted stream for %q does not authenticate under key %d (altered, reordered or truncated)", sr.counter, sr.label, sr.keyID())
	}
	sr.plain, sr.done = plain, final
	sr.counter++
	return nil
}
