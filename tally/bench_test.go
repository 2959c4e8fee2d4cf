package tally

import "testing"

// BenchmarkCount1000 counts a box of 1,000 HPKE ballots (decryption dominates).
func BenchmarkCount1000(b *testing.B) {
	s := newSetup(b)
	box := generateBox(b, s.pub, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Count(s.rebuild(b), testElection(), seq(box.ballots), 1000); err != nil {
			b.Fatal(err)
		}
	}
}
