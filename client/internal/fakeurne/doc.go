// Package fakeurne owns an in-process fake of an Urne cluster for the client's tests: gRPC
// servers on loopback with real mutual TLS, a shared election state, error statuses carrying
// ErrorInfo details as nodes send them, and fault injection (leader changes, dead nodes,
// unknown outcomes, diverged replicas).
package fakeurne
