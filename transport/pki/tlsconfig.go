package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerConfig is the TLS 1.3 configuration of a node's listeners. It demands a client
// certificate and accepts it only if this election's CA signed it and its URI names this
// election; nodes and clients alike pass (callers that need a node check PeerIdentity).
func ServerConfig(caPEM, certPEM, keyPEM []byte, electionID string) (*tls.Config, error) {
	v, pair, err := prepare(caPEM, certPEM, keyPEM, electionID, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// The chain is checked by VerifyConnection rather than by crypto/tls, so that a
		// certificate from another election is refused with a message naming both elections.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := v.verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
			return err
		},
	}, nil
}

// ClientConfig is the TLS 1.3 configuration for dialing a node of this election. The server
// must present a node certificate of this election's CA naming this election. serverName may
// be empty: nodes are addressed by IP:port, so the identity, not the host name, is what counts.
// When serverName is set, the certificate must also be valid for it.
func ClientConfig(caPEM, certPEM, keyPEM []byte, electionID string, serverName string) (*tls.Config, error) {
	v, pair, err := prepare(caPEM, certPEM, keyPEM, electionID, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ServerName:   serverName,
		// crypto/tls would insist on a host name; VerifyConnection below does the whole check
		// (CA, election, node kind, and the host name when one is given).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return v.verifyServer(cs.PeerCertificates, serverName)
		},
	}, nil
}

// PeerIdentity is the identity of the peer of a completed handshake made with ServerConfig or
// ClientConfig, which have already verified it.
func PeerIdentity(state tls.ConnectionState) (Identity, error) {
	if len(state.PeerCertificates) == 0 {
		return Identity{}, ErrNoCertificate
	}
	return IdentityOf(state.PeerCertificates[0])
}

// LoadFiles reads a CA certificate, a certificate and its key, and checks that the key matches
// the certificate and that the CA signed it, so a wrong file is named before any listener starts.
func LoadFiles(ca, cert, key string) (caPEM, certPEM, keyPEM []byte, err error) {
	if caPEM, err = readPEMFile("CA certificate", ca); err != nil {
		return nil, nil, nil, err
	}
	if certPEM, err = readPEMFile("certificate", cert); err != nil {
		return nil, nil, nil, err
	}
	if keyPEM, err = readPEMFile("private key", key); err != nil {
		return nil, nil, nil, err
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, nil, nil, fmt.Errorf("certificate %s and private key %s do not form a pair: %w", cert, key, err)
	}
	if err := checkSignedBy(caPEM, certPEM); err != nil {
		return nil, nil, nil, fmt.Errorf("certificate %s against CA %s: %w", cert, ca, err)
	}
	return caPEM, certPEM, keyPEM, nil
}

func readPEMFile(what, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: no file configured", what)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return data, nil
}

// checkSignedBy verifies a certificate against a CA for any purpose, without the election check.
func checkSignedBy(caPEM, certPEM []byte) error {
	roots, _, err := parseRoots(caPEM)
	if err != nil {
		return err
	}
	leaf, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return err
	}
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := leaf.Verify(opts); err != nil {
		return explainVerifyError(leaf, err, "this CA", x509.ExtKeyUsageAny)
	}
	return nil
}

// prepare builds the verifier of an election and checks that our own certificate belongs to it,
// so a node given another election's files refuses to start instead of failing every handshake.
func prepare(caPEM, certPEM, keyPEM []byte, electionID string, ownUsage x509.ExtKeyUsage) (*verifier, tls.Certificate, error) {
	v, err := newVerifier(caPEM, electionID)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("own certificate: %w", err)
	}
	if _, err := v.verify([]*x509.Certificate{leaf}, ownUsage); err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("own certificate: %w", err)
	}
	pair.Leaf = leaf
	return v, pair, nil
}

// verifier checks peer certificates against one election's CA and identity.
type verifier struct {
	roots      *x509.CertPool
	electionID string
}

func newVerifier(caPEM []byte, electionID string) (*verifier, error) {
	if err := ValidateName(electionID); err != nil {
		return nil, fmt.Errorf("election id: %w", err)
	}
	roots, ca, err := parseRoots(caPEM)
	if err != nil {
		return nil, err
	}
	if caElection, err := electionOfCA(ca); err == nil && caElection != electionID {
		return nil, &certError{
			msg:  fmt.Sprintf("CA certificate is the CA of election %s, this cluster runs election %s", caElection, electionID),
			kind: ErrWrongElection,
		}
	}
	return &verifier{roots: roots, electionID: electionID}, nil
}

func parseRoots(caPEM []byte) (*x509.CertPool, *x509.Certificate, error) {
	ca, err := ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return roots, ca, nil
}

// verify checks a peer's chain for one purpose, then that its identity names this election.
func (v *verifier) verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, ErrNoCertificate
	}
	leaf := chain[0]
	opts := x509.VerifyOptions{Roots: v.roots, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{usage}}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return Identity{}, explainVerifyError(leaf, err, "the CA of election "+v.electionID, usage)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, err
	}
	if id.ElectionID != v.electionID {
		return Identity{}, &certError{
			msg:  fmt.Sprintf("certificate is for election %s, this cluster runs election %s", id.ElectionID, v.electionID),
			kind: ErrWrongElection,
		}
	}
	return id, nil
}

// verifyServer adds to verify what a client asks of a server: a node, and the host name if given.
func (v *verifier) verifyServer(chain []*x509.Certificate, serverName string) error {
	id, err := v.verify(chain, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	if id.Kind != KindNode {
		return &certError{msg: fmt.Sprintf("server presented %s, which is not a node certificate", id), kind: ErrWrongKind}
	}
	if serverName == "" {
		return nil
	}
	if err := chain[0].VerifyHostname(serverName); err != nil {
		return &certError{msg: fmt.Sprintf("certificate of %s: %v", id, err), kind: ErrInvalidCertificate}
	}
	return nil
}

// explainVerifyError turns an x509 verification failure into a sentence naming the certificate.
func explainVerifyError(leaf *x509.Certificate, err error, caName string, usage x509.ExtKeyUsage) error {
	subject := describeCert(leaf)
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return &certError{
			msg:  fmt.Sprintf("certificate of %s is not signed by %s (issuer %s)", subject, caName, describeIssuer(leaf)),
			kind: ErrForeignCA,
		}
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		return &certError{msg: explainInvalid(subject, leaf, invalid, usage), kind: ErrInvalidCertificate}
	}
	return &certError{msg: fmt.Sprintf("certificate of %s: %v", subject, err), kind: ErrInvalidCertificate}
}

func explainInvalid(subject string, leaf *x509.Certificate, err x509.CertificateInvalidError, usage x509.ExtKeyUsage) string {
	switch err.Reason {
	case x509.Expired:
		return fmt.Sprintf("certificate of %s is valid only from %s to %s", subject,
			leaf.NotBefore.UTC().Format("2006-01-02 15:04 MST"), leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	case x509.IncompatibleUsage:
		return fmt.Sprintf("certificate of %s may not be used for %s", subject, usageName(usage))
	default:
		return fmt.Sprintf("certificate of %s: %v", subject, err)
	}
}

func usageName(usage x509.ExtKeyUsage) string {
	switch usage {
	case x509.ExtKeyUsageServerAuth:
		return "serving (it is not a node certificate)"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	default:
		return "this purpose"
	}
}
