//go:build race

package harness

// raftTimeoutScale doubles the lan profile's raft timeouts for in-process nodes built with
// the race detector, which runs them several times slower: 600 ms instead of 300 ms.
const raftTimeoutScale = 2
