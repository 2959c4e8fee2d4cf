//go:build !race

package harness

// raftTimeoutScale keeps the profile's raft timeouts for nodes built without the race detector.
const raftTimeoutScale = 1
