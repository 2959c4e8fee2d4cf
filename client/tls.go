package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// NodeURIScheme is the scheme of the URI SAN that names a node: urne://<election-id>/node/<node-id>.
const NodeURIScheme = "urne"

// ParseNodeURI splits a node identity URI, urne://<election-id>/node/<node-id>, into its
// election id and node id.
func ParseNodeURI(raw string) (electionID, nodeID string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("node identity %q is not a URI: %w", raw, err)
	}
	if u.Scheme != NodeURIScheme || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("node identity %q is not of the form urne://<election-id>/node/<node-id>", raw)
	}
	nodeID, ok := strings.CutPrefix(u.Path, "/node/")
	if u.Host == "" || !ok || nodeID == "" || strings.Contains(nodeID, "/") {
		return "", "", fmt.Errorf("node identity %q is not of the form urne://<election-id>/node/<node-id>", raw)
	}
	return u.Host, nodeID, nil
}

// NewTLSConfig returns a TLS 1.3 client configuration that presents cert and accepts only
// servers whose certificate chains to roots and names a node of electionID in a URI SAN.
// Nodes are addressed by IP:port, so the usual host name check is replaced by that identity
// check; an empty electionID accepts a node of any election that roots signed.
func NewTLSConfig(roots *x509.CertPool, cert tls.Certificate, electionID string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		// The standard verification checks the host name, which a node certificate does not
		// carry; VerifyConnection below does the whole chain and identity check instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyNode(cs.PeerCertificates, roots, electionID)
		},
	}
}

// verifyNode checks that chain[0] is signed by roots (through chain[1:]) for server use and
// names a node of electionID.
func verifyNode(chain []*x509.Certificate, roots *x509.CertPool, electionID string) error {
	if len(chain) == 0 {
		return errors.New("urne node presented no certificate")
	}
	leaf := chain[0]
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("urne node certificate %q does not verify against this election's CA: %w", leaf.Subject.CommonName, err)
	}
	return checkNodeIdentity(leaf, electionID)
}

// checkNodeIdentity looks for a URI SAN naming a node of electionID.
func checkNodeIdentity(leaf *x509.Certificate, electionID string) error {
	var seen []string
	for _, u := range leaf.URIs {
		eid, _, err := ParseNodeURI(u.String())
		if err != nil {
			continue
		}
		if electionID == "" || eid == electionID {
			return nil
		}
		seen = append(seen, u.String())
	}
	if len(seen) > 0 {
		return fmt.Errorf("urne node certificate belongs to another election: %s, want election %q", strings.Join(seen, ", "), electionID)
	}
	return fmt.Errorf("urne node certificate %q has no urne://<election-id>/node/<node-id> URI", leaf.Subject.CommonName)
}

// LoadTLSFiles reads a CA certificate and a client key pair (PEM files) and returns
// NewTLSConfig for them.
func LoadTLSFiles(caFile, certFile, keyFile, electionID string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading election CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("election CA %s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return NewTLSConfig(roots, cert, electionID), nil
}
