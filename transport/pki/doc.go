// Package pki owns an election's certificate authority and the node and client certificates it
// issues, the identities those certificates carry, and the TLS configurations that check them.
package pki

import "errors"

// Errors a caller can test with errors.Is. The messages that wrap them name the certificate,
// its issuer and the elections involved, so an operator can tell which file is wrong.
var (
	// ErrForeignCA: a certificate is not signed by this election's CA.
	ErrForeignCA = errors.New("certificate not signed by the election CA")
	// ErrWrongElection: a certificate signed by the right CA names another election.
	ErrWrongElection = errors.New("certificate is for another election")
	// ErrWrongKind: a client certificate where a node is required, or the reverse.
	ErrWrongKind = errors.New("certificate is of the wrong kind")
	// ErrNoIdentity: a certificate carries no urne:// identity, or a malformed one.
	ErrNoIdentity = errors.New("certificate carries no valid urne identity")
	// ErrNoCertificate: the peer presented no certificate at all.
	ErrNoCertificate = errors.New("peer presented no certificate")
	// ErrInvalidCertificate: a certificate is expired, not yet valid or not usable for its purpose.
	ErrInvalidCertificate = errors.New("certificate is not valid")
	// ErrInvalidName: an election id, node id or role breaks the naming rule.
	ErrInvalidName = errors.New("invalid name")
	// ErrBadPEM: a file or buffer holds no usable PEM block of the expected type.
	ErrBadPEM = errors.New("no usable PEM data")
	// ErrBadGossipKey: a gossip key file does not hold one base64 line of 32 bytes.
	ErrBadGossipKey = errors.New("invalid gossip key")
)

// certError carries an operator-facing message verbatim while still matching a sentinel error.
type certError struct {
	msg  string
	kind error
}

func (e *certError) Error() string { return e.msg }
func (e *certError) Unwrap() error { return e.kind }
