// Package workload owns the synthetic voting load used by bench, demo, drills and tests, and
// the history it records.
//
// Run casts one random ballot per voter from many goroutines and records every operation:
// acknowledged, failed with a definitive answer, or of unknown outcome. Verify then reads
// every node and checks what the history promises: no acknowledged ballot lost, no voter with
// two ballots, and every replica identical.
package workload
