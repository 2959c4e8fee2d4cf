package client

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/urne-vote/urne/client/internal/fakeurne"
)

const testElection = "e-2026-cse"

// newCA returns a throwaway election CA.
func newCA(t *testing.T, electionID string) *fakeurne.CA {
	t.Helper()
	ca, err := fakeurne.NewCA(electionID)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// startCluster runs n fake nodes (n1 leads) of testElection, seeded with 100 voters v000001..
func startCluster(t *testing.T, n int) *fakeurne.Cluster {
	t.Helper()
	fc := fakeurne.Start(t, newCA(t, testElection), n)
	fc.Seed(100, "v")
	return fc
}

// newTestClient returns a client of fc's CA with fast retries, on endpoints (all of fc's when
// nil), after mod changes its config.
func newTestClient(t *testing.T, fc *fakeurne.Cluster, endpoints []string, mod func(*Config)) *Client {
	t.Helper()
	cert, err := fc.CA.ClientCert("app")
	if err != nil {
		t.Fatal(err)
	}
	if endpoints == nil {
		endpoints = fc.Endpoints()
	}
	cfg := Config{
		Endpoints:      endpoints,
		TLS:            NewTLSConfig(fc.CA.Pool(), cert, fc.ElectionID),
		RequestTimeout: 3 * time.Second,
		MaxAttempts:    5,
		Backoff:        time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// deadEndpoint returns the address of a node that is down: connections to it are refused.
func deadEndpoint(t *testing.T, fc *fakeurne.Cluster) string {
	t.Helper()
	n := fc.StartNodeWithCA(t, "dead", fc.CA)
	n.Stop()
	return n.Addr
}

// nodesOf returns the node ids of calls.
func nodesOf(calls []fakeurne.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Node)
	}
	return out
}

type tlsCert = tls.Certificate

// chainOf issues a certificate with issue(id) and returns its parsed chain.
func chainOf(issue func(string) (tls.Certificate, error), id string) func() ([]*x509.Certificate, error) {
	return func() ([]*x509.Certificate, error) {
		cert, err := issue(id)
		if err != nil {
			return nil, err
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		return []*x509.Certificate{leaf}, err
	}
}
