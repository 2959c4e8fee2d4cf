package workload

import (
	"context"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/internal/fakeurne"
)

// startCluster runs n fake nodes (n1 leads) of an open election with voters v000001...
func startCluster(t *testing.T, n, voters int) *fakeurne.Cluster {
	t.Helper()
	ca, err := fakeurne.NewCA("e-load")
	if err != nil {
		t.Fatal(err)
	}
	fc := fakeurne.Start(t, ca, n)
	fc.Seed(voters, "v")
	return fc
}

// newClient returns a client of fc with fast retries; mod may change its config.
func newClient(t *testing.T, fc *fakeurne.Cluster, mod func(*client.Config)) *client.Client {
	t.Helper()
	cert, err := fc.CA.ClientCert("app")
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.Config{
		Endpoints:   fc.Endpoints(),
		TLS:         client.NewTLSConfig(fc.CA.Pool(), cert, fc.ElectionID),
		MaxAttempts: 5,
		Backoff:     time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runLoad casts for every voter and fails the test on a run error.
func runLoad(t *testing.T, c *client.Client, cfg Config) *History {
	t.Helper()
	h, err := Run(context.Background(), c, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// verify waits for convergence and verifies h against every node of fc.
func verify(t *testing.T, fc *fakeurne.Cluster, c *client.Client, h *History) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitConverged(ctx, c, fc.Endpoints()); err != nil {
		t.Fatal(err)
	}
	r, err := h.Verify(ctx, c, fc.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checksOf returns the distinct checks that report violations.
func checksOf(r Report) map[Check]bool {
	out := map[Check]bool{}
	for _, v := range r.Violations {
		out[v.Check] = true
	}
	return out
}
