package fakeurne

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// CA is a throwaway certificate authority for one election.
type CA struct {
	ElectionID string
	cert       *x509.Certificate
	key        *ecdsa.PrivateKey
	certPEM    []byte
}

// NewCA creates a CA for electionID.
func NewCA(electionID string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "urne election CA " + electionID},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{ElectionID: electionID, cert: cert, key: key, certPEM: pemBlock("CERTIFICATE", der)}, nil
}

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// NodeCert issues a node certificate naming urne://<election>/node/<nodeID>, valid for 127.0.0.1.
func (ca *CA) NodeCert(nodeID string) (tls.Certificate, error) {
	return ca.NodeCertFor(ca.ElectionID, nodeID)
}

// NodeCertFor issues a node certificate naming a node of electionID, which may not be the CA's.
func (ca *CA) NodeCertFor(electionID, nodeID string) (tls.Certificate, error) {
	uri := &url.URL{Scheme: "urne", Host: electionID, Path: "/node/" + nodeID}
	return ca.issue("node "+nodeID, uri, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
}

// ClientCert issues a client certificate naming urne://<election>/client/<role>.
func (ca *CA) ClientCert(role string) (tls.Certificate, error) {
	uri := &url.URL{Scheme: "urne", Host: ca.ElectionID, Path: "/client/" + role}
	return ca.issue("client "+role, uri, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

// ClientPEM issues a client certificate and returns it and its key in PEM.
func (ca *CA) ClientPEM(role string) (certPEM, keyPEM []byte, err error) {
	cert, err := ca.ClientCert(role)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", cert.Certificate[0]), pemBlock("PRIVATE KEY", keyDER), nil
}

func (ca *CA) issue(cn string, uri *url.URL, usage []x509.ExtKeyUsage) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		URIs:         []*url.URL{uri},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing %s: %w", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
