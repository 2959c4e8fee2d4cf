// Package linearize owns the correctness check of an election cluster under faults: a
// workload that records every operation's call, return and outcome (ok, failed, unknown), a
// porcupine model of the election per voter, and the invariants a history and the final state
// of every replica must keep (no acknowledged cast lost, no voter with two ballots, as many
// émargements as ballots, counts monotonic and within bounds, every replica's digest equal).
package linearize
