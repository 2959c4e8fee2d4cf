package archive

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkCreateVerify seals and verifies the archive of a closed election of 2,000 voters
// and 1,000 ballots; bytes/s is over the state stream.
func BenchmarkCreateVerify(b *testing.B) {
	state, index := closedElection(b, 2000, 1000)
	key := testKey(b, "bench")
	b.SetBytes(int64(len(state)))
	for b.Loop() {
		var out bytes.Buffer
		if _, err := Create(&out, bytes.NewReader(state), key, header(index), Options{}); err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(&out, key, nil, func(string, io.Reader) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
