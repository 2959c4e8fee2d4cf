// Package client owns the Go client of an Urne cluster: endpoint and leader discovery, retries
// with idempotency keys, typed errors.
//
// A Client sends writes and linearizable reads to the leader it discovers with Operator.Node,
// and moves to the next endpoint when a node fails. Logins and sealed casts are the exception:
// the node that receives one checks the secret's slow hash or opens the envelope before
// forwarding it, so they go to each node in turn and that cost spreads over the cluster. Every write carries a request id generated
// once per logical call and reused on every retry, so a retried Cast after an unknown outcome
// returns the first receipt instead of recording a second ballot. Errors from nodes are mapped
// to the sentinel errors of this package, which errors.Is recognizes, while their message keeps
// the node's own text.
package client
