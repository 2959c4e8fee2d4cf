package audit

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urne-vote/urne/tsa"
)

// BadEntryError names the first entry of a register that fails verification.
type BadEntryError struct {
	Seq    uint64 // the entry at fault
	Line   int    // line of the export where it was detected, 0 outside an export
	Reason string
}

func (e *BadEntryError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("entry %d (found at line %d): %s", e.Seq, e.Line, e.Reason)
	}
	return fmt.Sprintf("entry %d: %s", e.Seq, e.Reason)
}

// Unwrap makes errors.Is(err, ErrTampered) true.
func (e *BadEntryError) Unwrap() error { return ErrTampered }

// StampCheck is one verified trusted timestamp.
type StampCheck struct {
	EntrySeq   uint64    // entry holding the token
	StampedSeq uint64    // entry whose hash the token stamps
	Authority  string    // subject of the signing certificate
	Time       time.Time // the authority's time
}

// Report is what a successful verification found.
type Report struct {
	// First and Entries are the first and the last entry verified: 1 and how many there are,
	// unless the verification resumed after an entry.
	First, Entries uint64
	Head           Hash
	Stamps         []StampCheck
	// Unstamped counts the entries after the last one a trusted token vouches for: nothing
	// outside the register proves they were not cut or rewritten.
	Unstamped uint64
	// ErasedConnections counts entries whose connection details were erased after retention.
	ErasedConnections uint64
}

// LastStampedSeq is the highest entry a trusted token vouches for, 0 if none.
func (r *Report) LastStampedSeq() uint64 {
	var last uint64
	for _, s := range r.Stamps {
		last = max(last, s.StampedSeq)
	}
	return last
}

// Verifier checks a register entry by entry, from entry 1, or from a later entry with Resume.
// Use it on a live register or through Verify on an export.
type Verifier struct {
	trusted []*x509.Certificate
	after   uint64                         // the entry before the first one added
	start   Hash                           // its hash
	earlier func(seq uint64) (Hash, error) // the hash of an entry up to after
	hashes  []Hash                         // hashes[i] is the hash of entry after+i+1
	report  Report
}

// NewVerifier returns a verifier that accepts tokens signed by trusted authorities only.
func NewVerifier(trusted []*x509.Certificate) *Verifier {
	return &Verifier{trusted: trusted}
}

// Resume returns a verifier whose first entry is after+1 and must chain to head, the hash of
// entry after. A token that stamps an entry up to after is checked against earlier(seq).
// Entries up to after are taken as they are: another verification answers for them.
func Resume(trusted []*x509.Certificate, after uint64, head Hash, earlier func(seq uint64) (Hash, error)) *Verifier {
	return &Verifier{trusted: trusted, after: after, start: head, earlier: earlier}
}

// Add checks the next entry; stated, if not zero, is the hash its source claims for it.
// line is for messages (0 outside an export).
func (v *Verifier) Add(e *Entry, stated Hash, line int) error {
	bad := func(seq uint64, format string, args ...any) error {
		return &BadEntryError{Seq: seq, Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	expected := v.after + uint64(len(v.hashes)) + 1
	h := e.Hash()
	switch {
	case stated != (Hash{}) && stated != h:
		return bad(e.Seq, "changed: its content hashes to %s, the register says %s", h, stated)
	case e.Seq > expected:
		return bad(expected, "missing: the register goes from entry %d to entry %d", expected-1, e.Seq)
	case e.Seq < expected:
		return bad(e.Seq, "out of place: entry %d appears again after entry %d (reordered or inserted)", e.Seq, expected-1)
	case e.Prev != v.head():
		return v.brokenLink(e, bad)
	case e.Connection != nil && e.Connection.Digest() != e.ConnectionDigest:
		return bad(e.Seq, "changed: its connection details do not match their digest")
	}
	if e.Stamp != nil {
		if err := v.checkStamp(e, bad); err != nil {
			return err
		}
	}
	if e.HasConnection && e.Connection == nil {
		v.report.ErasedConnections++
	}
	v.hashes = append(v.hashes, h)
	return nil
}

// brokenLink blames the predecessor: its own stated hash matched its content, so it is the
// entry that no longer matches what its successor chained to (changed, or inserted before).
func (v *Verifier) brokenLink(e *Entry, bad func(uint64, string, ...any) error) error {
	if e.Seq == 1 {
		return bad(1, "changed: the first entry must chain to the zero hash, it chains to %s", e.Prev)
	}
	return bad(e.Seq-1, "changed or inserted: it hashes to %s, but entry %d chains to %s", v.head(), e.Seq, e.Prev)
}

func (v *Verifier) head() Hash {
	if len(v.hashes) == 0 {
		return v.start
	}
	return v.hashes[len(v.hashes)-1]
}

// checkStamp verifies a token: it must stamp the hash of an earlier entry of this register
// and be signed by a trusted authority.
func (v *Verifier) checkStamp(e *Entry, bad func(uint64, string, ...any) error) error {
	s := e.Stamp
	if s.Seq == 0 || s.Seq >= e.Seq {
		return bad(e.Seq, "its timestamp stamps entry %d, which does not precede it", s.Seq)
	}
	tok, err := tsa.Verify(s.Token, s.Head[:], v.trusted)
	if err != nil {
		return bad(e.Seq, "invalid timestamp token: %v", err)
	}
	actual, err := v.hashOf(s.Seq)
	if err != nil {
		return bad(e.Seq, "its timestamp stamps entry %d, which cannot be read: %v", s.Seq, err)
	}
	if actual != s.Head {
		last := v.report.LastStampedSeq()
		return bad(s.Seq, "rewritten: a trusted timestamp (entry %d, %s) vouches for hash %s, the entry hashes to %s; "+
			"the change lies after entry %d, the last one an earlier timestamp vouches for", e.Seq, tok.Authority, s.Head, actual, last)
	}
	v.report.Stamps = append(v.report.Stamps, StampCheck{EntrySeq: e.Seq, StampedSeq: s.Seq, Authority: tok.Authority, Time: tok.Time})
	return nil
}

// hashOf is the hash of an entry before the one being added.
func (v *Verifier) hashOf(seq uint64) (Hash, error) {
	if seq > v.after {
		return v.hashes[seq-v.after-1], nil
	}
	return v.earlier(seq)
}

// Report returns what was verified so far.
func (v *Verifier) Report() *Report {
	r := v.report
	r.First, r.Entries = v.after+1, v.after+uint64(len(v.hashes))
	r.Head = v.head()
	r.Unstamped = r.Entries - min(r.Entries, r.LastStampedSeq())
	r.Stamps = append([]StampCheck(nil), v.report.Stamps...)
	return &r
}

// Verify reads an export from its first entry and checks the chain, every entry's stated
// hash and every timestamp token against the trusted authority certificates. On failure the
// error is a *BadEntryError naming the first bad entry, or wraps ErrFormat.
func Verify(r io.Reader, trusted []*x509.Certificate) (*Report, error) {
	er, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	v := NewVerifier(trusted)
	for {
		e, stated, err := er.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := v.Add(e, stated, er.Line()); err != nil {
			return nil, err
		}
	}
	rep := v.Report()
	if rep.Entries == 0 {
		return nil, fmt.Errorf("%w: the export holds no entry", ErrFormat)
	}
	return rep, nil
}
