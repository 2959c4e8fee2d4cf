package client

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestRefusesNodeCertifiedByAnotherCA(t *testing.T) {
	fc := startCluster(t, 1)
	impostor := fc.StartNodeWithCA(t, "n9", newCA(t, testElection))
	c := newTestClient(t, fc, []string{impostor.Addr}, func(cfg *Config) { cfg.MaxAttempts = 2 })

	_, err := c.Counts(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "signed by unknown authority") {
		t.Fatalf("error = %v, want a refused certificate", err)
	}
	if calls := fc.Calls(""); len(calls) != 0 {
		t.Errorf("requests reached the impostor: %v", calls)
	}
}

func TestAcceptsNodeOfTheElection(t *testing.T) {
	fc := startCluster(t, 1)
	c := newTestClient(t, fc, nil, nil)
	if _, err := c.Counts(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNode(t *testing.T) {
	ca := newCA(t, testElection)
	other := newCA(t, "other")
	tests := []struct {
		name     string
		issuer   func() ([]*x509.Certificate, error)
		election string
		wantErr  string
	}{
		{"node of the election", chainOf(ca.NodeCert, "n1"), testElection, ""},
		{"any election allowed", chainOf(ca.NodeCert, "n1"), "", ""},
		{"node of another election, same CA", chainOf(func(id string) (tlsCert, error) { return ca.NodeCertFor("other", id) }, "n1"), testElection, "another election"},
		{"client certificate", chainOf(ca.ClientCert, "app"), testElection, "key usage"},
		{"another CA", chainOf(other.NodeCert, "n1"), testElection, "unknown authority"},
		{"no certificate", func() ([]*x509.Certificate, error) { return nil, nil }, testElection, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := tt.issuer()
			if err != nil {
				t.Fatal(err)
			}
			err = verifyNode(chain, ca.Pool(), tt.election)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("verifyNode = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseNodeURI(t *testing.T) {
	tests := []struct {
		uri, election, node string
		ok                  bool
	}{
		{"urne://e1/node/n1", "e1", "n1", true},
		{"urne://e-2026/node/dc1-a", "e-2026", "dc1-a", true},
		{"urne://e1/client/app", "", "", false},
		{"urne://e1/node/", "", "", false},
		{"urne://e1/node/n1/x", "", "", false},
		{"urne:///node/n1", "", "", false},
		{"https://e1/node/n1", "", "", false},
		{"urne://e1/node/n1?x=1", "", "", false},
		{"urne:e1/node/n1", "", "", false},
		{"%zz", "", "", false},
	}
	for _, tt := range tests {
		election, node, err := ParseNodeURI(tt.uri)
		if (err == nil) != tt.ok || election != tt.election || node != tt.node {
			t.Errorf("ParseNodeURI(%q) = %q, %q, %v", tt.uri, election, node, err)
		}
	}
}

func FuzzParseNodeURI(f *testing.F) {
	for _, s := range []string{"urne://e1/node/n1", "urne://e1/client/app", "urne://@/node/%2F", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		election, node, err := ParseNodeURI(s)
		if err != nil {
			return
		}
		if election == "" || node == "" || strings.Contains(node, "/") {
			t.Fatalf("ParseNodeURI(%q) accepted election %q node %q", s, election, node)
		}
	})
}
