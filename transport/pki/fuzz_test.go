package pki

import (
	"crypto/x509"
	"testing"
)

func FuzzIdentityOf(f *testing.F) {
	ca, err := NewCA("e1", 0)
	if err != nil {
		f.Fatal(err)
	}
	nodePEM, _, _ := ca.IssueNode("n1", []string{"127.0.0.1", "n1"})
	clientPEM, _, _ := ca.IssueClient(RoleApp)
	for _, p := range [][]byte{ca.CertPEM(), nodePEM, clientPEM} {
		cert, err := ParseCertificatePEM(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cert.Raw)
	}
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		id, err := IdentityOf(cert)
		if err == nil && id.Validate() != nil {
			t.Fatalf("IdentityOf returned invalid identity %+v", id)
		}
	})
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"urne://e1/node/n1", "urne://e1/client/app", "urne://e1/ca", "urne://e1:1/node/%2F", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		id, err := ParseIdentity(uri)
		if err != nil {
			return
		}
		again, err := ParseIdentity(id.String())
		if err != nil || again != id {
			t.Fatalf("%q parsed to %+v, whose String %q parses to %+v, %v", uri, id, id.String(), again, err)
		}
	})
}

func FuzzParseGossipKey(f *testing.F) {
	key, _ := GenerateGossipKey()
	f.Add(EncodeGossipKey(key))
	f.Add([]byte("  \n"))
	f.Add([]byte("AAAA===="))
	f.Fuzz(func(t *testing.T, text []byte) {
		key, err := ParseGossipKey(text)
		if err == nil && len(key) != GossipKeySize {
			t.Fatalf("ParseGossipKey returned %d bytes", len(key))
		}
	})
}
