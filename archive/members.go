package archive

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// The sealed content of an archive (the plaintext inside the backup framing) is a member
// stream, version 1 (integers big-endian):
//
//	magic "URNEARC1"
//	member*    'F' | name length u8 | name | chunk* | u32 0 | SHA-256 of the member's bytes
//	chunk      length u32 (1..maxChunk) | bytes
//	manifest   'Z' | length u32 (1..maxManifest) | manifest JSON
//
// and nothing after the manifest. Members are written one after the other as their bytes
// arrive, so neither writer nor reader holds more than one chunk.
const (
	contentMagic = "URNEARC1"
	tagMember    = 'F'
	tagManifest  = 'Z'
	maxChunk     = 64 << 10
	maxManifest  = 1 << 20
	maxName      = 128
	maxMembers   = 256
)

// Sentinel errors; every error of this package wraps one of them or one of backup's.
var (
	// ErrFormat: the decrypted content is not a member stream of this version.
	ErrFormat = errors.New("malformed election archive")
	// ErrMismatch: a member, the manifest or the register does not match what the archive
	// says of it.
	ErrMismatch = errors.New("election archive does not match its manifest")
)

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// checkName accepts relative slash-separated names of [a-z0-9._-] without empty or dot parts,
// so that extracting a member can never leave its folder.
func checkName(name string) error {
	if name == "" || len(name) > maxName {
		return formatErr("member name of %d bytes, want 1 to %d", len(name), maxName)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return formatErr("member name %q has an empty or dot part", name)
		}
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return formatErr("member name %q: only a-z, 0-9, '.', '_', '-' and '/'", name)
		}
	}
	return nil
}

// memberWriter writes the member stream to w.
type memberWriter struct {
	w     io.Writer
	names map[string]bool
	cur   *memberSink
}

func newMemberWriter(w io.Writer) (*memberWriter, error) {
	if _, err := io.WriteString(w, contentMagic); err != nil {
		return nil, err
	}
	return &memberWriter{w: w, names: map[string]bool{}}, nil
}

// memberSink is the member being written.
type memberSink struct {
	mw   *memberWriter
	name string
	h    hash.Hash
	buf  []byte
	size uint64
}

// open starts a member; the previous one must be closed.
func (mw *memberWriter) open(name string) (*memberSink, error) {
	if mw.cur != nil {
		return nil, fmt.Errorf("archive: member %q opened while %q is open", name, mw.cur.name)
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if mw.names[name] {
		return nil, fmt.Errorf("archive: member %q written twice", name)
	}
	if len(mw.names) >= maxMembers {
		return nil, fmt.Errorf("archive: more than %d members", maxMembers)
	}
	mw.names[name] = true
	head := append([]byte{tagMember, byte(len(name))}, name...)
	if _, err := mw.w.Write(head); err != nil {
		return nil, err
	}
	mw.cur = &memberSink{mw: mw, name: name, h: sha256.New(), buf: make([]byte, 0, maxChunk)}
	return mw.cur, nil
}

func (m *memberSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(m.buf[len(m.buf):maxChunk], p)
		m.buf, p = m.buf[:len(m.buf)+k], p[k:]
		if len(m.buf) == maxChunk {
			if err := m.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (m *memberSink) flush() error {
	if len(m.buf) == 0 {
		return nil
	}
	if _, err := m.mw.w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m.buf)))); err != nil {
		return err
	}
	if _, err := m.mw.w.Write(m.buf); err != nil {
		return err
	}
	m.h.Write(m.buf)
	m.size += uint64(len(m.buf))
	m.buf = m.buf[:0]
	return nil
}

// close ends the member and returns its manifest line.
func (m *memberSink) close() (Member, error) {
	if err := m.flush(); err != nil {
		return Member{}, err
	}
	sum := m.h.Sum(nil)
	if _, err := m.mw.w.Write(append(binary.BigEndian.AppendUint32(nil, 0), sum...)); err != nil {
		return Member{}, err
	}
	m.mw.cur = nil
	return Member{Name: m.name, Bytes: m.size, SHA256: fmt.Sprintf("%x", sum)}, nil
}

// manifest writes the manifest record that ends the stream.
func (mw *memberWriter) manifest(js []byte) error {
	if mw.cur != nil {
		return fmt.Errorf("archive: manifest written while member %q is open", mw.cur.name)
	}
	if len(js) == 0 || len(js) > maxManifest {
		return fmt.Errorf("archive: manifest of %d bytes, limit %d", len(js), maxManifest)
	}
	head := binary.BigEndian.AppendUint32([]byte{tagManifest}, uint32(len(js)))
	if _, err := mw.w.Write(head); err != nil {
		return err
	}
	_, err := mw.w.Write(js)
	return err
}

// MemberFunc receives the bytes of one member as they are read. The reader checks the
// member's SHA-256 only after the last byte: what fn did with them is to be thrown away if
// the read then fails.
type MemberFunc func(name string, r io.Reader) error

// readMembers parses a member stream, calling fn (if not nil) with each member, and returns
// the members found (with their sizes and hashes as read) and the manifest's bytes.
func readMembers(r io.Reader, fn MemberFunc) ([]Member, []byte, error) {
	magic := make([]byte, len(contentMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return nil, nil, readErr(err, "the content's first bytes")
	}
	if string(magic) != contentMagic {
		return nil, nil, formatErr("the content starts with %q, not %q", magic, contentMagic)
	}
	var members []Member
	seen := map[string]bool{}
	for {
		var tag [1]byte
		if _, err := io.ReadFull(r, tag[:]); err != nil {
			return nil, nil, readErr(err, "a record tag")
		}
		switch tag[0] {
		case tagManifest:
			js, err := readManifestBytes(r)
			return members, js, err
		case tagMember:
			m, err := readMember(r, fn, seen)
			if err != nil {
				return nil, nil, err
			}
			if len(members) >= maxMembers {
				return nil, nil, formatErr("more than %d members", maxMembers)
			}
			members = append(members, m)
		default:
			return nil, nil, formatErr("unknown record tag %#x after %d members", tag[0], len(members))
		}
	}
}

func readManifestBytes(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, readErr(err, "the manifest length")
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 || size > maxManifest {
		return nil, formatErr("manifest of %d bytes, want 1 to %d", size, maxManifest)
	}
	js := make([]byte, size)
	if _, err := io.ReadFull(r, js); err != nil {
		return nil, readErr(err, "the manifest")
	}
	var one [1]byte
	if k, err := r.Read(one[:]); k > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, formatErr("bytes follow the manifest")
	}
	return js, nil
}

func readMember(r io.Reader, fn MemberFunc, seen map[string]bool) (Member, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return Member{}, readErr(err, "a member name")
	}
	name := make([]byte, n[0])
	if _, err := io.ReadFull(r, name); err != nil {
		return Member{}, readErr(err, "a member name")
	}
	if err := checkName(string(name)); err != nil {
		return Member{}, err
	}
	if seen[string(name)] {
		return Member{}, formatErr("member %q appears twice", name)
	}
	seen[string(name)] = true
	body := &chunkReader{r: r, h: sha256.New()}
	if fn != nil {
		if err := fn(string(name), body); err != nil {
			return Member{}, err
		}
	}
	if _, err := io.Copy(io.Discard, body); err != nil { // what fn left unread
		return Member{}, err
	}
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, sum); err != nil {
		return Member{}, readErr(err, "a member checksum")
	}
	if got := body.h.Sum(nil); string(got) != string(sum) {
		return Member{}, fmt.Errorf("%w: member %s hashes to %x, its record says %x", ErrMismatch, name, got, sum)
	}
	return Member{Name: string(name), Bytes: body.size, SHA256: fmt.Sprintf("%x", sum)}, nil
}

// chunkReader returns the bytes of one member's chunks, then io.EOF at its zero length.
type chunkReader struct {
	r    io.Reader
	h    hash.Hash
	left uint32
	size uint64
	done bool
	err  error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.done {
			return 0, io.EOF
		}
		var n [4]byte
		if _, err := io.ReadFull(c.r, n[:]); err != nil {
			c.err = readErr(err, "a chunk length")
			return 0, c.err
		}
		c.left = binary.BigEndian.Uint32(n[:])
		if c.left > maxChunk {
			c.err = formatErr("chunk of %d bytes, limit %d", c.left, maxChunk)
			return 0, c.err
		}
		c.done = c.left == 0
	}
	if uint32(len(p)) > c.left {
		p = p[:c.left]
	}
	k, err := c.r.Read(p)
	c.h.Write(p[:k])
	c.left -= uint32(k)
	c.size += uint64(k)
	if err != nil && (c.left > 0 || !errors.Is(err, io.EOF)) {
		c.err = readErr(err, "a chunk")
		return k, c.err
	}
	return k, nil
}

func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr("the content ends in %s", what)
	}
	return err
}
