package archive

import (
	"bytes"
	"testing"
)

// FuzzArchiveMembers feeds arbitrary bytes to the member-stream parser (the content inside the
// sealed framing): it must return an error or members, never panic or allocate past its bounds.
func FuzzArchiveMembers(f *testing.F) {
	var valid bytes.Buffer
	mw, _ := newMemberWriter(&valid)
	sink, _ := mw.open("a/b.jsonl")
	_, _ = sink.Write([]byte("{}\n"))
	_, _ = sink.close()
	_ = mw.manifest([]byte(`{"format":"urne-election-archive","version":1}`))
	f.Add(valid.Bytes())
	f.Add([]byte(contentMagic + "Z\x00\x00\x00\x02{}"))
	f.Add([]byte(contentMagic + "F\x02..\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		members, js, err := readMembers(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		for _, m := range members {
			if checkName(m.Name) != nil {
				t.Fatalf("accepted member name %q", m.Name)
			}
		}
		_, _ = decodeManifest(js)
	})
}

// FuzzArchiveVerify mutates a whole sealed archive: Verify must refuse or accept without panicking.
func FuzzArchiveVerify(f *testing.F) {
	file, _ := makeArchive(f, Options{})
	f.Add(file)
	f.Add(file[:len(file)/2])
	key := testKey(f, "archive-key")
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Verify(bytes.NewReader(b), key, nil, nil)
	})
}
