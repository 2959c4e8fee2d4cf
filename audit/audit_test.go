package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urne-vote/urne/tsa/tsatest"
)

func TestBinaryRoundTrip(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	for _, e := range sampleRegister(t, a).entries {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Entry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("entry %d: %v", e.Seq, err)
		}
		if got.Hash() != e.Hash() || (got.Connection == nil) != (e.Connection == nil) {
			t.Fatalf("entry %d changed in a round trip", e.Seq)
		}
	}
}

// TestCanonicalGolden pins the canonical bytes: a change of encoding would break every
// register already written.
func TestCanonicalGolden(t *testing.T) {
	e := &Entry{Seq: 2, Prev: Hash{1, 2, 3}, Time: 1_800_000_000_123_456_789, RaftIndex: 7, Actor: "client:organizer",
		Action: "open election", Object: "election muni-2027", Outcome: OutcomeOK, Detail: "é"}
	e.SetConnection(&Connection{IP: "192.0.2.1", ConnectedAt: 1_800_000_000_000_000_000, Retention: RetentionLogs, Salt: []byte{9, 9}})
	e.Stamp = &Stamp{Seq: 1, Head: Hash{4}, Authority: "TSA", Token: []byte{0x30, 0x00}}
	path := filepath.Join("testdata", "entry_v1.hex")
	got := hex.EncodeToString(e.Canonical())
	if os.Getenv("URNE_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("canonical encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestUnmarshalRefusesGarbage(t *testing.T) {
	e := &Entry{Seq: 1, Action: "x", Outcome: OutcomeOK}
	good, _ := e.MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":         nil,
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 7),
		"version":       append([]byte{2}, good[1:]...),
		"huge length":   append(append([]byte(nil), good[:49]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"unknown flags": append(append([]byte(nil), good[:len(good)-1]...), 0x80),
	} {
		var got Entry
		if err := got.UnmarshalBinary(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestVerifyHonestExport(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	c := sampleRegister(t, a)
	rep, err := Verify(bytes.NewReader(export(t, c.entries)), trusted(a))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 12 || rep.Head != c.head() || len(rep.Stamps) != 2 || rep.LastStampedSeq() != 9 || rep.Unstamped != 3 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Stamps[0].Authority == "" || rep.Stamps[0].Time.IsZero() {
		t.Fatalf("stamp check %+v", rep.Stamps[0])
	}
}

func TestVerifyAfterConnectionErased(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	c := sampleRegister(t, a)
	entries := cloneAll(c.entries)
	entries[2].EraseConnection()
	out := export(t, entries)
	if bytes.Contains(out, []byte("192.0.2.7")) {
		t.Fatal("erased address still exported")
	}
	rep, err := Verify(bytes.NewReader(out), trusted(a))
	if err != nil {
		t.Fatal(err)
	}
	if rep.ErasedConnections != 1 {
		t.Fatalf("erased connections %d", rep.ErasedConnections)
	}
}

// TestVerifyNamesFirstBadEntry tampers with an honest register in every way the verifier must
// catch, and checks the entry it names.
func TestVerifyNamesFirstBadEntry(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	forger := tsatest.NewAuthority(t, "Test TSA") // same name, another key
	c := sampleRegister(t, a)
	tests := []struct {
		name    string
		tamper  func(es []*Entry) []*Entry
		rewrite bool // recompute the stated hashes, as a careful forger would
		badSeq  uint64
		reason  string
	}{
		{"changed, hash left", func(es []*Entry) []*Entry { es[6].Detail = "ballots in box: 9"; return es }, false, 7, "changed"},
		{"changed, hash recomputed", func(es []*Entry) []*Entry { es[10].Outcome = "refused"; return es }, true, 11, "changed"},
		{"dropped", func(es []*Entry) []*Entry { return append(es[:5], es[6:]...) }, false, 6, "missing"},
		{"inserted", func(es []*Entry) []*Entry {
			x := clone(es[7])
			x.Detail = "ballots in box: 2"
			return append(es[:8], append([]*Entry{x}, es[8:]...)...)
		}, true, 8, "out of place"},
		{"reordered", func(es []*Entry) []*Entry { es[6], es[7] = es[7], es[6]; return es }, false, 7, "missing"},
		{"changed connection", func(es []*Entry) []*Entry { es[2].Connection.IP = "198.51.100.1"; return es }, false, 3, "connection"},
		{"forged token", func(es []*Entry) []*Entry {
			es[4].Stamp.Token = forger.Token(t, es[4].Stamp.Head[:])
			return es
		}, true, 5, "invalid timestamp token"},
		{"token moved to another head", func(es []*Entry) []*Entry {
			es[9].Stamp.Token = es[4].Stamp.Token
			return es
		}, true, 10, "stamps another digest"},
		{"stamp claims a later entry", func(es []*Entry) []*Entry { es[4].Stamp.Seq = 5; return es }, true, 5, "does not precede"},
		{"tail rewritten and rechained", func(es []*Entry) []*Entry {
			es[6].Detail = "ballots in box: 0" // then relink everything after it
			for i := 7; i < len(es); i++ {
				es[i].Prev = es[i-1].Hash()
			}
			return es
		}, true, 9, "rewritten"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := tt.tamper(cloneAll(c.entries))
			out := export(t, entries)
			if !tt.rewrite {
				out = keepStatedHashes(t, out, c.entries)
			}
			_, err := Verify(bytes.NewReader(out), trusted(a))
			var bad *BadEntryError
			if !errors.As(err, &bad) || !errors.Is(err, ErrTampered) {
				t.Fatalf("got %v, want a bad entry", err)
			}
			if bad.Seq != tt.badSeq || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("got %q, want entry %d (%s)", err, tt.badSeq, tt.reason)
			}
		})
	}
}

// keepStatedHashes puts back the hashes of the honest export on lines of the same sequence
// number, as a forger who edits only the content would leave them.
func keepStatedHashes(t *testing.T, out []byte, honest []*Entry) []byte {
	t.Helper()
	lines := bytes.Split(out, []byte("\n"))
	for i, line := range lines {
		for _, e := range honest {
			seq := []byte(`{"seq":` + itoa(e.Seq) + `,"hash":"`)
			if bytes.HasPrefix(line, seq) {
				h := e.Hash().String()
				copy(line[len(seq):], h)
				lines[i] = line
			}
		}
	}
	return bytes.Join(lines, []byte("\n"))
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestVerifyRefusesUntrustedOrMissingAuthority(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	other := tsatest.NewAuthority(t, "Other TSA")
	out := export(t, sampleRegister(t, a).entries)
	if _, err := Verify(bytes.NewReader(out), nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("no certificate: got %v", err)
	}
	_, err := Verify(bytes.NewReader(out), trusted(other))
	var bad *BadEntryError
	if !errors.As(err, &bad) || bad.Seq != 5 {
		t.Fatalf("other authority: got %v, want entry 5 refused", err)
	}
}

func TestVerifyRefusesMalformedExports(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	good := export(t, sampleRegister(t, a).entries)
	header, _, _ := bytes.Cut(good, []byte("\n"))
	for name, b := range map[string][]byte{
		"empty":          nil,
		"no entry":       append(header, '\n'),
		"not json":       append(append(header, '\n'), "hello\n"...),
		"unknown field":  append(append(header, '\n'), `{"seq":1,"bogus":1}`+"\n"...),
		"other format":   []byte(`{"format":"other","version":1}` + "\n"),
		"starts later":   append(append(header, '\n'), bytes.SplitN(good, []byte("\n"), 4)[3]...),
		"bad time":       bytes.Replace(good, []byte(`"time":"2027`), []byte(`"time":"x027`), 1),
		"bad token text": bytes.Replace(good, []byte(`"token":"`), []byte(`"token":"!`), 1),
	} {
		_, err := Verify(bytes.NewReader(b), trusted(a))
		if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTampered) {
			t.Errorf("%s: got %v, want ErrFormat or ErrTampered", name, err)
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteText(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	r, err := NewReader(bytes.NewReader(export(t, sampleRegister(t, a).entries)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteText(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"election muni-2027", "open election", "from 192.0.2.7", "timestamp over entry 4 by Test TSA",
		"refused: wrong phase", "12 entries"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
