package audit

import (
	"encoding/binary"
	"fmt"
)

// Bounds of what one entry may hold.
const (
	MaxFieldSize = 4 << 10
	MaxTokenSize = 64 << 10
	maxSaltSize  = 64
)

// Canonical encoding, version 1 (integers big-endian, strings and bytes uvarint-length-prefixed):
//
//	version u8 | seq u64 | prev [32] | time u64 | raft index u64 |
//	actor | action | object | outcome | detail | flags u8 |
//	[connection digest [32]] | [stamp: seq u64 | head [32] | authority | token]
//
// Flags: 1 = connection digest present, 2 = stamp present. The stored form appends, after the
// canonical bytes, the connection details when they are still kept: tag 1 | ip | connected at
// u64 | retention | salt.
const (
	canonicalVersion = 1
	flagConnection   = 1
	flagStamp        = 2
	tagConnection    = 1
)

// Canonical returns the deterministic bytes the entry's hash covers.
func (e *Entry) Canonical() []byte {
	var w encoder
	w.b = make([]byte, 0, 128+len(e.Actor)+len(e.Action)+len(e.Object)+len(e.Detail))
	w.b = append(w.b, canonicalVersion)
	w.u64(e.Seq)
	w.b = append(w.b, e.Prev[:]...)
	w.u64(uint64(e.Time))
	w.u64(e.RaftIndex)
	for _, s := range []string{e.Actor, e.Action, e.Object, e.Outcome, e.Detail} {
		w.str(s)
	}
	var flags byte
	if e.HasConnection {
		flags |= flagConnection
	}
	if e.Stamp != nil {
		flags |= flagStamp
	}
	w.b = append(w.b, flags)
	if e.HasConnection {
		w.b = append(w.b, e.ConnectionDigest[:]...)
	}
	if s := e.Stamp; s != nil {
		w.u64(s.Seq)
		w.b = append(w.b, s.Head[:]...)
		w.str(s.Authority)
		w.bytes(s.Token)
	}
	return w.b
}

// MarshalBinary is the stored form: the canonical bytes and the connection details if kept.
func (e *Entry) MarshalBinary() ([]byte, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	b := e.Canonical()
	if c := e.Connection; c != nil {
		w := encoder{b: append(b, tagConnection)}
		w.str(c.IP)
		w.u64(uint64(c.ConnectedAt))
		w.str(c.Retention)
		w.bytes(c.Salt)
		b = w.b
	}
	return b, nil
}

// UnmarshalBinary reads the stored form written by MarshalBinary.
func (e *Entry) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	*e = Entry{}
	d.canonical(e)
	if d.err == nil && len(d.b) > 0 {
		d.connection(e)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the entry", len(d.b))
	}
	if d.err != nil {
		return d.err
	}
	return e.Check()
}

type encoder struct{ b []byte }

func (w *encoder) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *encoder) bytes(v []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = append(w.b, v...)
}
func (w *encoder) str(v string) { w.bytes([]byte(v)) }

// decoder reads the encoding; the first error sticks and later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("truncated entry")
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) hash() (h Hash) {
	copy(h[:], d.take(HashSize))
	return h
}

func (d *decoder) bytes(limit int) []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(limit) {
		d.fail("field length out of bounds (limit %d)", limit)
		return nil
	}
	d.b = d.b[k:]
	return append([]byte(nil), d.take(int(n))...)
}

func (d *decoder) str(limit int) string { return string(d.bytes(limit)) }

func (d *decoder) canonical(e *Entry) {
	if v := d.u8(); d.err == nil && v != canonicalVersion {
		d.fail("entry encoding version %d, this build reads version %d", v, canonicalVersion)
	}
	e.Seq, e.Prev = d.u64(), d.hash()
	e.Time, e.RaftIndex = int64(d.u64()), d.u64()
	for _, s := range []*string{&e.Actor, &e.Action, &e.Object, &e.Outcome, &e.Detail} {
		*s = d.str(MaxFieldSize)
	}
	flags := d.u8()
	if flags&^(flagConnection|flagStamp) != 0 {
		d.fail("unknown entry flags %#x", flags)
	}
	if flags&flagConnection != 0 {
		e.HasConnection, e.ConnectionDigest = true, d.hash()
	}
	if flags&flagStamp != 0 {
		e.Stamp = &Stamp{Seq: d.u64(), Head: d.hash(), Authority: d.str(MaxFieldSize), Token: d.bytes(MaxTokenSize)}
	}
}

func (d *decoder) connection(e *Entry) {
	if tag := d.u8(); d.err == nil && tag != tagConnection {
		d.fail("unknown trailing tag %#x", tag)
		return
	}
	c := &Connection{IP: d.str(MaxFieldSize), ConnectedAt: int64(d.u64()), Retention: d.str(MaxFieldSize), Salt: d.bytes(maxSaltSize)}
	if d.err == nil && !e.HasConnection {
		d.fail("connection details without a connection digest")
	}
	e.Connection = c
}
