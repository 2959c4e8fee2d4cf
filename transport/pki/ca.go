package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// DefaultCAValidity covers an election from set-up through tally and the archive period.
const DefaultCAValidity = 2 * 365 * 24 * time.Hour

// clockSkew back-dates every certificate so a node whose clock is a little behind accepts it.
const clockSkew = 5 * time.Minute

// CA is one election's certificate authority. Every node and client of the election holds a
// certificate it issued, and every listener trusts only it.
type CA struct {
	electionID string
	cert       *x509.Certificate
	certPEM    []byte
	key        *ecdsa.PrivateKey
}

// NewCA creates the CA of an election, valid for validity (DefaultCAValidity when zero or less).
func NewCA(electionID string, validity time.Duration) (*CA, error) {
	if err := ValidateName(electionID); err != nil {
		return nil, fmt.Errorf("election id: %w", err)
	}
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	template := &x509.Certificate{
		Subject:               caSubject(electionID),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: uriScheme, Host: electionID, Path: "/" + caKind}},
	}
	der, err := signCertificate(template, template, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate of election %s: %w", electionID, err)
	}
	return newCA(der, key)
}

// LoadCA reads a CA written by CertPEM and KeyPEM, and checks that the key matches the certificate.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %q is not a CA certificate", cert.Subject.String())
	}
	key, err := parseECKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA key does not belong to CA certificate %q", cert.Subject.String())
	}
	return newCA(cert.Raw, key)
}

func newCA(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	election, err := electionOfCA(cert)
	if err != nil {
		return nil, err
	}
	return &CA{electionID: election, cert: cert, certPEM: encodePEM("CERTIFICATE", der), key: key}, nil
}

// electionOfCA reads the election a CA certificate belongs to from its urne://<election>/ca URI.
func electionOfCA(cert *x509.Certificate) (string, error) {
	for _, u := range cert.URIs {
		election, kind, name, err := splitURI(u)
		if err == nil && kind == caKind && name == "" && ValidateName(election) == nil {
			return election, nil
		}
	}
	return "", fmt.Errorf("%w: CA certificate %q has no %s://<election>/%s URI", ErrNoIdentity, cert.Subject.String(), uriScheme, caKind)
}

// ElectionID is the election this CA belongs to.
func (ca *CA) ElectionID() string { return ca.electionID }

// Certificate is the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM is the CA certificate, the trust anchor every node and client is given.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// KeyPEM is the CA private key in PKCS #8; it stays with the operator, never on a node.
func (ca *CA) KeyPEM() ([]byte, error) {
	return marshalKeyPEM(ca.key)
}

// IssueNode issues a node certificate for server and client authentication. hosts are the DNS
// names and IP addresses the node is reached at (for example 127.0.0.1, localhost, its node id).
func (ca *CA) IssueNode(nodeID string, hosts []string) (certPEM, keyPEM []byte, err error) {
	id := Identity{ElectionID: ca.electionID, Kind: KindNode, Name: nodeID}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return ca.issue(id, usage, hosts)
}

// IssueClient issues a client certificate for a role such as RoleOperator or RoleApp.
func (ca *CA) IssueClient(role string) (certPEM, keyPEM []byte, err error) {
	id := Identity{ElectionID: ca.electionID, Kind: KindClient, Name: role}
	return ca.issue(id, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil)
}

// issue signs a leaf certificate for any identity; the exported methods pin the election.
func (ca *CA) issue(id Identity, usage []x509.ExtKeyUsage, hosts []string) (certPEM, keyPEM []byte, err error) {
	if err := id.Validate(); err != nil {
		return nil, nil, fmt.Errorf("issue certificate: %w", err)
	}
	template, err := leafTemplate(id, usage, hosts, ca.cert.NotAfter)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", id, err)
	}
	der, err := signCertificate(template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate for %s: %w", id, err)
	}
	keyPEM, err = marshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return encodePEM("CERTIFICATE", der), keyPEM, nil
}

// leafTemplate describes a node or client certificate that expires with its CA.
func leafTemplate(id Identity, usage []x509.ExtKeyUsage, hosts []string, notAfter time.Time) (*x509.Certificate, error) {
	template := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   id.Kind + " " + id.Name,
			Organization: []string{"Urne election " + id.ElectionID},
		},
		NotBefore:             time.Now().Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URI()},
	}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case ip != nil:
			template.IPAddresses = append(template.IPAddresses, ip)
		case h != "":
			template.DNSNames = append(template.DNSNames, h)
		default:
			return nil, fmt.Errorf("issue certificate for %s: empty host name", id)
		}
	}
	return template, nil
}

func caSubject(electionID string) pkix.Name {
	return pkix.Name{CommonName: "Urne election " + electionID + " CA", Organization: []string{"Urne"}}
}

func signCertificate(template, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	template.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, template, parent, pub, signer)
}

func marshalKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return encodePEM("PRIVATE KEY", der), nil
}

func encodePEM(blockType string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
}

// ParseCertificatePEM parses the first CERTIFICATE block of a PEM buffer.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrBadPEM)
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// parseECKeyPEM reads an ECDSA key in PKCS #8 or SEC 1 form.
func parseECKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no private key block", ErrBadPEM)
	}
	if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s block: %v", ErrBadPEM, block.Type, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: private key is %T, want ECDSA", ErrBadPEM, parsed)
	}
	return key, nil
}
