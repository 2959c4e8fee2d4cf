package audit

import (
	"bytes"
	"testing"

	"github.com/urne-vote/urne/tsa/tsatest"
)

// FuzzVerifyExport feeds arbitrary bytes to the export reader and verifier: they must answer
// an error or a report, never panic, and never accept an export they would not write back.
func FuzzVerifyExport(f *testing.F) {
	a := tsatest.NewAuthority(f, "Fuzz TSA")
	good := export(f, sampleRegister(f, a).entries)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"format":"urne-activity-register","version":1}` + "\n" + `{"seq":1}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Verify(bytes.NewReader(b), trusted(a))
		if err == nil && rep.Entries == 0 {
			t.Fatal("an export with no entry was accepted")
		}
	})
}

// FuzzUnmarshalEntry checks that the stored form is read without panic and round-trips.
func FuzzUnmarshalEntry(f *testing.F) {
	a := tsatest.NewAuthority(f, "Fuzz TSA")
	for _, e := range sampleRegister(f, a).entries {
		b, _ := e.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if err := e.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
		var back Entry
		if err := back.UnmarshalBinary(again); err != nil || back.Hash() != e.Hash() {
			t.Fatalf("round trip changed the entry: %v", err)
		}
	})
}
