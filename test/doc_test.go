// Package test owns the cluster-level tests: in-process clusters with fault injection and
// real-process clusters started through the urne binary.
package test
