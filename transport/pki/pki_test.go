package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testPKI is one election's CA with a node and an operator certificate, made once per test.
type testPKI struct {
	ca                *CA
	caPEM             []byte
	nodeCert, nodeKey []byte
	cliCert, cliKey   []byte
}

func newTestPKI(t *testing.T, election string) testPKI {
	t.Helper()
	ca, err := NewCA(election, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{ca: ca, caPEM: ca.CertPEM()}
	if p.nodeCert, p.nodeKey, err = ca.IssueNode("n1", []string{"127.0.0.1", "localhost", "n1"}); err != nil {
		t.Fatal(err)
	}
	if p.cliCert, p.cliKey, err = ca.IssueClient(RoleOperator); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestNewCAAndLoadCA(t *testing.T) {
	ca, err := NewCA("acme-2026", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.Certificate()
	if cert.Subject.CommonName != "Urne election acme-2026 CA" || !cert.IsCA {
		t.Fatalf("CA subject %q, IsCA %v", cert.Subject.CommonName, cert.IsCA)
	}
	if life := time.Until(cert.NotAfter); life < DefaultCAValidity-time.Hour || life > DefaultCAValidity+time.Hour {
		t.Fatalf("CA validity %v, want about %v", life, DefaultCAValidity)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ElectionID() != "acme-2026" || !loaded.Certificate().Equal(cert) {
		t.Fatalf("loaded CA of election %q differs", loaded.ElectionID())
	}
	other, _ := NewCA("other", time.Hour)
	otherKey, _ := other.KeyPEM()
	if _, err := LoadCA(ca.CertPEM(), otherKey); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("LoadCA with another CA's key: %v", err)
	}
}

func TestIssuedCertificates(t *testing.T) {
	p := newTestPKI(t, "acme-2026")
	tests := []struct {
		name     string
		certPEM  []byte
		want     Identity
		usages   []x509.ExtKeyUsage
		dnsNames []string
		ips      int
	}{
		{"node", p.nodeCert, Identity{"acme-2026", KindNode, "n1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []string{"localhost", "n1"}, 1},
		{"client", p.cliCert, Identity{"acme-2026", KindClient, RoleOperator},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := mustParse(t, tt.certPEM)
			got, err := IdentityOf(cert)
			if err != nil || got != tt.want {
				t.Fatalf("IdentityOf = %+v, %v; want %+v", got, err, tt.want)
			}
			if !slices.Equal(cert.ExtKeyUsage, tt.usages) || !slices.Equal(cert.DNSNames, tt.dnsNames) || len(cert.IPAddresses) != tt.ips {
				t.Fatalf("EKU %v DNS %v IPs %v", cert.ExtKeyUsage, cert.DNSNames, cert.IPAddresses)
			}
			if !cert.NotAfter.Equal(p.ca.Certificate().NotAfter) {
				t.Fatalf("leaf expires %v, CA %v", cert.NotAfter, p.ca.Certificate().NotAfter)
			}
		})
	}
}

func TestIssueRefusesBadNames(t *testing.T) {
	if _, err := NewCA("bad/election", 0); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("NewCA with a slash: %v", err)
	}
	ca, err := NewCA("e1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "-n1", ".n1", "n 1", "n/1", strings.Repeat("x", 65), "nœud"} {
		if _, _, err := ca.IssueNode(name, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("IssueNode(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	if _, _, err := ca.IssueNode("n1", []string{""}); err == nil {
		t.Error("IssueNode with an empty host succeeded")
	}
}

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		uri  string
		want Identity
		ok   bool
	}{
		{"urne://e1/node/n1", Identity{"e1", KindNode, "n1"}, true},
		{"urne://acme_2026.v2/client/operator", Identity{"acme_2026.v2", KindClient, RoleOperator}, true},
		{"URNE://e1/node/n1", Identity{"e1", KindNode, "n1"}, true},
		{"urne://e1/ca", Identity{}, false},
		{"urne://e1/admin/root", Identity{}, false},
		{"urne://e1/node/n1/extra", Identity{}, false},
		{"urne://e1/node/", Identity{}, false},
		{"urne:///node/n1", Identity{}, false},
		{"urne://e1:80/node/n1", Identity{}, false},
		{"urne://u@e1/node/n1", Identity{}, false},
		{"urne://e1/node/n1?x=1", Identity{}, false},
		{"urne://e1/node/n1#f", Identity{}, false},
		{"urne://e1/node/n%2F1", Identity{}, false},
		{"spiffe://e1/node/n1", Identity{}, false},
		{"urne:e1/node/n1", Identity{}, false},
	}
	for _, tt := range tests {
		got, err := ParseIdentity(tt.uri)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseIdentity(%q) = %+v, %v", tt.uri, got, err)
			continue
		}
		if tt.ok && !strings.EqualFold(got.String(), tt.uri) {
			t.Errorf("String() = %q, want %q", got.String(), tt.uri)
		}
	}
}

func TestIdentityOfNeedsExactlyOneURI(t *testing.T) {
	p := newTestPKI(t, "e1")
	cert := mustParse(t, p.nodeCert)
	twice := *cert
	twice.URIs = append(slices.Clone(cert.URIs), cert.URIs[0])
	none := *cert
	none.URIs = nil
	for name, c := range map[string]*x509.Certificate{"two URIs": &twice, "no URI": &none, "nil": nil} {
		if _, err := IdentityOf(c); err == nil {
			t.Errorf("%s: IdentityOf succeeded", name)
		}
	}
}

// handshake runs one TLS handshake over loopback TCP and returns each side's error. The
// client reads one byte after its handshake so that a refusal by the server (sent after the
// client's TLS 1.3 handshake completes) is seen.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		conn := tls.Server(raw, server)
		if err := conn.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = conn.Write([]byte{1})
		done <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Client(raw, client)
	clientErr = conn.Handshake()
	if clientErr == nil {
		_, clientErr = conn.Read(make([]byte, 1))
	}
	raw.Close()
	return <-done, clientErr
}

func mustServer(t *testing.T, caPEM, cert, key []byte, election string) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(caPEM, cert, key, election)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustClient(t *testing.T, caPEM, cert, key []byte, election, serverName string) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(caPEM, cert, key, election, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestServerConfigChecksClients(t *testing.T) {
	e1, e2 := newTestPKI(t, "e1"), newTestPKI(t, "e2")
	wrongElectionCert, wrongElectionKey, err := e1.ca.issue(Identity{"e2", KindClient, RoleApp}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
	if err != nil {
		t.Fatal(err)
	}
	server := mustServer(t, e1.caPEM, e1.nodeCert, e1.nodeKey, "e1")
	// These clients trust e1's CA, so only the server's check can refuse them.
	tests := []struct {
		name      string
		cert, key []byte
		wantErr   error
		wantMsg   string
	}{
		{"node of the election", e1.nodeCert, e1.nodeKey, nil, ""},
		{"client of the election", e1.cliCert, e1.cliKey, nil, ""},
		{"node of another election's CA", e2.nodeCert, e2.nodeKey, ErrForeignCA,
			"certificate of urne://e2/node/n1 is not signed by the CA of election e1 (issuer Urne election e2 CA)"},
		{"right CA, wrong election", wrongElectionCert, wrongElectionKey, ErrWrongElection,
			"certificate is for election e2, this cluster runs election e1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tls.X509KeyPair(tt.cert, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			client := mustClient(t, e1.caPEM, e1.cliCert, e1.cliKey, "e1", "")
			client.Certificates = []tls.Certificate{pair}
			serverErr, clientErr := handshake(t, server, client)
			if !errors.Is(serverErr, tt.wantErr) || (tt.wantErr != nil && serverErr.Error() != tt.wantMsg) {
				t.Fatalf("server error %v, want %q", serverErr, tt.wantMsg)
			}
			if (clientErr == nil) != (tt.wantErr == nil) {
				t.Fatalf("client error %v", clientErr)
			}
		})
	}
}

func TestServerConfigRequiresClientCertificate(t *testing.T) {
	e1 := newTestPKI(t, "e1")
	client := mustClient(t, e1.caPEM, e1.cliCert, e1.cliKey, "e1", "")
	client.Certificates = nil
	serverErr, _ := handshake(t, mustServer(t, e1.caPEM, e1.nodeCert, e1.nodeKey, "e1"), client)
	if serverErr == nil {
		t.Fatal("server accepted a client without a certificate")
	}
}

func TestClientConfigChecksServers(t *testing.T) {
	e1, e2 := newTestPKI(t, "e1"), newTestPKI(t, "e2")
	clientAsServer := mustServer(t, e1.caPEM, e1.nodeCert, e1.nodeKey, "e1")
	pair, _ := tls.X509KeyPair(e1.cliCert, e1.cliKey)
	clientAsServer.Certificates = []tls.Certificate{pair}
	tests := []struct {
		name       string
		server     *tls.Config
		serverName string
		wantErr    error
		wantMsg    string
	}{
		{"node by IP, no name", mustServer(t, e1.caPEM, e1.nodeCert, e1.nodeKey, "e1"), "", nil, ""},
		{"node by matching name", mustServer(t, e1.caPEM, e1.nodeCert, e1.nodeKey, "e1"), "localhost", nil, ""},
		{"node by another name", mustServer(t, e1.caPEM, e1.nodeCert, e1.nodeKey, "e1"), "n2", ErrInvalidCertificate, "n2"},
		{"node of another election", mustServer(t, e2.caPEM, e2.nodeCert, e2.nodeKey, "e2"), "", ErrForeignCA,
			"certificate of urne://e2/node/n1 is not signed by the CA of election e1 (issuer Urne election e2 CA)"},
		{"client certificate as server", clientAsServer, "", ErrInvalidCertificate, "may not be used for serving"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := mustClient(t, e1.caPEM, e1.cliCert, e1.cliKey, "e1", tt.serverName)
			_, clientErr := handshake(t, tt.server, client)
			if !errors.Is(clientErr, tt.wantErr) || (tt.wantErr != nil && !strings.Contains(clientErr.Error(), tt.wantMsg)) {
				t.Fatalf("client error %v, want %q", clientErr, tt.wantMsg)
			}
		})
	}
}

func TestConfigsRefuseOwnCertificateOfAnotherElection(t *testing.T) {
	e1, e2 := newTestPKI(t, "e1"), newTestPKI(t, "e2")
	if _, err := ServerConfig(e1.caPEM, e2.nodeCert, e2.nodeKey, "e1"); !errors.Is(err, ErrForeignCA) {
		t.Errorf("ServerConfig with e2's node certificate: %v", err)
	}
	_, err := ClientConfig(e2.caPEM, e2.cliCert, e2.cliKey, "e1", "")
	if !errors.Is(err, ErrWrongElection) || !strings.Contains(err.Error(), "CA of election e2, this cluster runs election e1") {
		t.Errorf("ClientConfig with e2's files for e1: %v", err)
	}
	if _, err := ServerConfig(e1.caPEM, e1.cliCert, e1.cliKey, "e1"); !errors.Is(err, ErrInvalidCertificate) {
		t.Errorf("ServerConfig with a client certificate: %v", err)
	}
	if _, err := ServerConfig(e1.caPEM, e1.nodeCert, e1.cliKey, "e1"); err == nil {
		t.Error("ServerConfig with a key of another certificate succeeded")
	}
}

func TestPeerIdentity(t *testing.T) {
	if _, err := PeerIdentity(tls.ConnectionState{}); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("no certificate: %v", err)
	}
	p := newTestPKI(t, "e1")
	got, err := PeerIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{mustParse(t, p.cliCert)}})
	if err != nil || got != (Identity{"e1", KindClient, RoleOperator}) {
		t.Fatalf("PeerIdentity = %+v, %v", got, err)
	}
}

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFiles(t *testing.T) {
	e1, e2 := newTestPKI(t, "e1"), newTestPKI(t, "e2")
	dir := t.TempDir()
	ca := writeTemp(t, dir, "ca.pem", e1.caPEM)
	cert := writeTemp(t, dir, "node.pem", e1.nodeCert)
	key := writeTemp(t, dir, "node-key.pem", e1.nodeKey)
	foreignCert := writeTemp(t, dir, "foreign.pem", e2.nodeCert)
	foreignKey := writeTemp(t, dir, "foreign-key.pem", e2.nodeKey)
	if _, _, _, err := LoadFiles(ca, cert, key); err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	tests := []struct {
		name, ca, cert, key, want string
	}{
		{"missing CA", filepath.Join(dir, "nope.pem"), cert, key, "read CA certificate"},
		{"no key configured", ca, cert, "", "private key: no file configured"},
		{"key of another certificate", ca, cert, foreignKey, "do not form a pair"},
		{"certificate of another CA", ca, foreignCert, foreignKey, "is not signed by this CA (issuer Urne election e2 CA)"},
	}
	for _, tt := range tests {
		if _, _, _, err := LoadFiles(tt.ca, tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := writeTemp(t, dir, "key", []byte("one"))
	if err := WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	info, _ := os.Stat(path)
	if err != nil || string(data) != "two" || info.Mode().Perm() != 0o600 {
		t.Fatalf("read %q, mode %v, %v", data, info.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(entries))
	}
}

func TestGossipKey(t *testing.T) {
	key, err := GenerateGossipKey()
	if err != nil || len(key) != GossipKeySize {
		t.Fatalf("GenerateGossipKey = %d bytes, %v", len(key), err)
	}
	path := writeTemp(t, t.TempDir(), "gossip.key", EncodeGossipKey(key))
	read, err := ReadGossipKey(path)
	if err != nil || !slices.Equal(read, key) {
		t.Fatalf("ReadGossipKey = %x, %v; want %x", read, err, key)
	}
	short := EncodeGossipKey(key[:16])
	for name, text := range map[string][]byte{
		"empty": nil, "16 bytes": short, "not base64": []byte("!!!!"),
		"two lines": append(EncodeGossipKey(key), EncodeGossipKey(key)...),
		"too long":  []byte(strings.Repeat(" ", 300)),
	} {
		if _, err := ParseGossipKey(text); !errors.Is(err, ErrBadGossipKey) {
			t.Errorf("%s: ParseGossipKey = %v", name, err)
		}
	}
}
