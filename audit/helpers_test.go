package audit

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/urne-vote/urne/tsa/tsatest"
)

// chain appends entries, linking each to the last.
type chain struct {
	entries []*Entry
}

func (c *chain) head() Hash {
	if len(c.entries) == 0 {
		return Hash{}
	}
	return c.entries[len(c.entries)-1].Hash()
}

func (c *chain) add(e *Entry) *Entry {
	e.Seq = uint64(len(c.entries)) + 1
	e.Prev = c.head()
	if e.Time == 0 {
		e.Time = 1_800_000_000_000_000_000 + int64(e.Seq)*1_000_000
	}
	c.entries = append(c.entries, e)
	return e
}

func (c *chain) action(actor, action, object string) *Entry {
	return c.add(&Entry{Actor: actor, Action: action, Object: object, Outcome: OutcomeOK, RaftIndex: uint64(len(c.entries) + 3)})
}

// stamp appends a timestamp entry over the current head, signed by a.
func (c *chain) stamp(t testing.TB, a *tsatest.Authority) *Entry {
	head := c.head()
	seq := uint64(len(c.entries))
	return c.add(&Entry{Actor: "node:dc1-a", Action: "timestamp", Object: fmt.Sprintf("entry %d", seq), Outcome: OutcomeOK,
		Stamp: &Stamp{Seq: seq, Head: head, Authority: a.Name, Token: a.Token(t, head[:])}})
}

// sampleRegister is a register of 12 entries with tokens at entries 5 and 10, stamping 4 and 9.
func sampleRegister(t testing.TB, a *tsatest.Authority) *chain {
	c := &chain{}
	c.action("client:organizer", "create election", "election muni-2027")
	c.action("client:organizer", "import voters", "election muni-2027").Detail = "500 imported"
	login := c.action("client:app", "login", "voter session")
	login.SetConnection(&Connection{IP: "192.0.2.7", ConnectedAt: login.Time - 5e9, Retention: RetentionLogs, Salt: []byte("0123456789abcdef")})
	c.action("client:organizer", "open election", "election muni-2027")
	c.stamp(t, a)
	for range 4 {
		c.action("client:app", "cast", "election muni-2027").Detail = "ballots in box: 1"
	}
	c.stamp(t, a)
	c.action("client:organizer", "close election", "election muni-2027")
	c.add(&Entry{Actor: "client:organizer", Action: "tally", Object: "election muni-2027", Outcome: OutcomeRefused + ": wrong phase"})
	return c
}

func export(t testing.TB, entries []*Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Election: "muni-2027", ExportedBy: "dc1-a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func trusted(a *tsatest.Authority) []*x509.Certificate { return []*x509.Certificate{a.Cert} }

// clone copies an entry deeply enough for tampering.
func clone(e *Entry) *Entry {
	c := *e
	if e.Stamp != nil {
		s := *e.Stamp
		s.Token = append([]byte(nil), s.Token...)
		c.Stamp = &s
	}
	if e.Connection != nil {
		conn := *e.Connection
		c.Connection = &conn
	}
	return &c
}

func cloneAll(entries []*Entry) []*Entry {
	out := make([]*Entry, len(entries))
	for i, e := range entries {
		out[i] = clone(e)
	}
	return out
}
