package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Reader returns the decrypted state stream of an archive. Every chunk is authenticated before
// its bytes are returned, and the last bytes are returned only once the summary, the checksum
// and the end of the file have been checked: a reader that got io.EOF read a whole, intact
// archive. Any other outcome is an error, never a silent short stream.
type Reader struct {
	fr      *frameReader
	header  Header
	seal    *sealing
	plain   []byte
	size    uint64
	summary Summary
	done    bool
	err     error
}

// ReadHeader reads an archive's header without any key.
func ReadHeader(r io.Reader) (Header, error) {
	fr := newFrameReader(r)
	if err := fr.readPrefix(); err != nil {
		return Header{}, err
	}
	h, _, err := fr.headerFrame()
	return h, err
}

// NewReader reads the header from r and checks that s is the secret that sealed the archive.
func NewReader(r io.Reader, s *Secret) (*Reader, error) {
	fr := newFrameReader(r)
	if err := fr.readPrefix(); err != nil {
		return nil, err
	}
	h, hh, err := fr.headerFrame()
	if err != nil {
		return nil, err
	}
	keys, err := s.open(h.Key, h.Salt)
	if err != nil {
		return nil, err
	}
	return &Reader{fr: fr, header: h, seal: newSealing(keys.data, hh)}, nil
}

// Header is the archive's header.
func (br *Reader) Header() Header { return br.header }

// Summary is the sealed summary; it is set once Read has returned io.EOF.
func (br *Reader) Summary() Summary { return br.summary }

func (br *Reader) Read(p []byte) (int, error) {
	for len(br.plain) == 0 {
		switch {
		case br.err != nil:
			return 0, br.err
		case br.done:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		br.err = br.advance()
	}
	n := copy(p, br.plain)
	br.plain = br.plain[n:]
	return n, nil
}

// advance opens the next data frame; after the final one it checks the rest of the file.
func (br *Reader) advance() error {
	kind, payload, _, err := br.fr.next()
	if err != nil {
		return err
	}
	if kind != kindData && kind != kindEnd {
		return errorf(ErrCorrupt, "a %s where chunk %d should be", kindName(kind), br.seal.counter)
	}
	plain, err := br.open(kind, payload)
	if err != nil {
		return err
	}
	br.size += uint64(len(plain))
	if kind == kindData {
		br.plain = plain
		return nil
	}
	// The frame buffer is reused by finish: keep the final chunk's bytes apart.
	final := append([]byte(nil), plain...)
	if err := br.finish(); err != nil {
		return err
	}
	br.plain, br.done = final, true
	return nil
}

// open authenticates and decrypts one sealed frame in place.
func (br *Reader) open(kind byte, payload []byte) ([]byte, error) {
	s := br.seal
	s.prepare(kind)
	plain, err := s.aead.Open(payload[:0], s.nonce[:], payload, s.aad[:])
	if err != nil {
		return nil, errorf(ErrDecrypt, "%s %d (byte %d) does not authenticate: the archive was altered or damaged",
			kindName(kind), s.counter, br.fr.offset-int64(len(payload)))
	}
	s.counter++
	return plain, nil
}

// finish reads the summary and the checksum and checks that the file ends there.
func (br *Reader) finish() error {
	kind, payload, _, err := br.fr.next()
	if err != nil {
		return err
	}
	if kind != kindSummary {
		return errorf(ErrCorrupt, "a %s follows the final chunk instead of the summary", kindName(kind))
	}
	js, err := br.open(kind, payload)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(js, &br.summary); err != nil {
		return errorf(ErrCorrupt, "the sealed summary does not decode: %v", err)
	}
	if br.summary.Size != br.size {
		return errorf(ErrCorrupt, "the summary counts %d bytes of state, the archive holds %d", br.summary.Size, br.size)
	}
	return checkTail(br.fr)
}

// checkTail reads the checksum frame and the end of the file.
func checkTail(fr *frameReader) error {
	kind, payload, sum, err := fr.next()
	if err != nil {
		return err
	}
	if kind != kindChecksum {
		return errorf(ErrCorrupt, "a %s where the checksum should be", kindName(kind))
	}
	if !bytes.Equal(payload, sum) {
		return errorf(ErrCorrupt, "the file's SHA-256 is %x, its checksum frame says %x: the file was damaged", sum, payload)
	}
	return fr.expectEOF()
}

// Framing is what CheckFraming learned without a key.
type Framing struct {
	Header Header
	Chunks int
	Bytes  int64
}

// CheckFraming walks an archive without decrypting it: prefix, header, frame order and sizes,
// the checksum, and the end of the file. It needs no key, so it cannot tell a forged archive
// from a genuine one; Verify can.
func CheckFraming(r io.Reader) (Framing, error) {
	fr := newFrameReader(r)
	var f Framing
	if err := fr.readPrefix(); err != nil {
		return f, err
	}
	h, _, err := fr.headerFrame()
	if err != nil {
		return f, err
	}
	f.Header = h
	for {
		kind, _, _, err := fr.next()
		if err != nil {
			return f, err
		}
		f.Chunks++
		if kind == kindEnd {
			break
		}
		if kind != kindData {
			return f, errorf(ErrCorrupt, "a %s where chunk %d should be", kindName(kind), f.Chunks-1)
		}
	}
	if kind, _, _, err := fr.next(); err != nil || kind != kindSummary {
		if err == nil {
			err = errorf(ErrCorrupt, "a %s follows the final chunk instead of the summary", kindName(kind))
		}
		return f, err
	}
	if err := checkTail(fr); err != nil {
		return f, err
	}
	f.Bytes = fr.offset
	return f, nil
}

// String describes the header for error messages.
func (h Header) String() string {
	return fmt.Sprintf("election %s at index %d (term %d) from %s, taken %s",
		h.ElectionID, h.Index, h.Term, h.NodeID, h.TakenAt.UTC().Format("2006-01-02T15:04:05Z"))
}
