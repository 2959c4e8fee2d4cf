package archive

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// The destruction certificate (PV de destruction) is what the controller receives once the
// election's data are destroyed: the two recorded steps, what the state machine destroyed and
// kept, and what every node erased, signed by the cluster's Ed25519 receipt key.
const (
	CertificateFormat  = "urne-destruction-certificate"
	CertificateVersion = 1
	// certificateContext is signed before the JSON, so that no receipt signature can pass
	// for a certificate signature or the other way round.
	certificateContext = "urne destruction certificate v1\n"
	maxCertificate     = 256 << 10
)

// ErrCertificate: a destruction certificate is malformed, incomplete, or its signature does
// not verify.
var ErrCertificate = errors.New("invalid destruction certificate")

// Certificate is the JSON content of a destruction certificate.
type Certificate struct {
	Format        string        `json:"format"`
	Version       int           `json:"version"`
	ElectionID    string        `json:"election_id"`
	ArchiveDigest string        `json:"archive_digest,omitempty"`
	RequestedBy   string        `json:"requested_by"`
	RequestedAt   time.Time     `json:"requested_at"`
	Reason        string        `json:"reason,omitempty"`
	AuthorizedBy  string        `json:"authorized_by"`
	AuthorizedAt  time.Time     `json:"authorized_at"`
	DueAt         time.Time     `json:"due_at"`
	Destroyed     []string      `json:"destroyed"`
	Kept          []string      `json:"kept"`
	Nodes         []NodeErasure `json:"nodes"`
}

// NodeErasure is what one node destroyed of its own.
type NodeErasure struct {
	NodeID   string    `json:"node_id"`
	ErasedAt time.Time `json:"erased_at"`
	Keys     []string  `json:"keys"`
	Files    []string  `json:"files"`
}

// NewCertificate builds the certificate of a destruction record once every node in nodes has
// reported its erasure; its bytes depend only on the record, so every node builds the same.
func NewCertificate(electionID string, archiveDigest []byte, d *fsmpb.Destruction, nodes []string) ([]byte, error) {
	if d.GetAuthorizedAtUnixNano() == 0 {
		return nil, fmt.Errorf("%w: the destruction was not authorized", ErrCertificate)
	}
	c := Certificate{Format: CertificateFormat, Version: CertificateVersion, ElectionID: electionID,
		RequestedBy: d.RequestedBy, RequestedAt: utc(d.RequestedAtUnixNano), Reason: d.Reason,
		AuthorizedBy: d.AuthorizedBy, AuthorizedAt: utc(d.AuthorizedAtUnixNano), DueAt: utc(d.DueAtUnixNano),
		Destroyed: d.Destroyed, Kept: d.Kept}
	if len(archiveDigest) > 0 {
		c.ArchiveDigest = fmt.Sprintf("%x", archiveDigest)
	}
	var missing []string
	for _, id := range nodes {
		i := slices.IndexFunc(d.Erasures, func(e *fsmpb.RecordErasure) bool { return e.NodeId == id })
		if i < 0 {
			missing = append(missing, id)
			continue
		}
		e := d.Erasures[i]
		c.Nodes = append(c.Nodes, NodeErasure{NodeID: id, ErasedAt: utc(e.ErasedAtUnixNano), Keys: e.Keys, Files: e.Files})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: nodes %v have not reported their erasure yet", ErrCertificate, missing)
	}
	slices.SortFunc(c.Nodes, func(a, b NodeErasure) int { return cmpString(a.NodeID, b.NodeID) })
	return json.MarshalIndent(c, "", "  ")
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func utc(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// SignCertificate signs a certificate's bytes with the cluster's receipt key.
func SignCertificate(priv ed25519.PrivateKey, cert []byte) []byte {
	return ed25519.Sign(priv, append([]byte(certificateContext), cert...))
}

// VerifyCertificate checks the signature with the cluster's receipt public key, then the
// content: format, both steps by two principals, at least one node, the due date respected.
func VerifyCertificate(pub ed25519.PublicKey, cert, sig []byte) (*Certificate, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: the cluster key has %d bytes, want %d", ErrCertificate, len(pub), ed25519.PublicKeySize)
	}
	if len(cert) > maxCertificate {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCertificate, len(cert), maxCertificate)
	}
	if !ed25519.Verify(pub, append([]byte(certificateContext), cert...), sig) {
		return nil, fmt.Errorf("%w: the signature does not verify with the cluster's key: the certificate was altered or signed by another cluster", ErrCertificate)
	}
	dec := json.NewDecoder(bytes.NewReader(cert))
	dec.DisallowUnknownFields()
	c := &Certificate{}
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	switch {
	case c.Format != CertificateFormat || c.Version != CertificateVersion:
		return nil, fmt.Errorf("%w: format %q version %d", ErrCertificate, c.Format, c.Version)
	case c.RequestedBy == "" || c.AuthorizedBy == "" || c.RequestedBy == c.AuthorizedBy:
		return nil, fmt.Errorf("%w: the request and the authorization must come from two principals (%q, %q)", ErrCertificate, c.RequestedBy, c.AuthorizedBy)
	case c.AuthorizedAt.Before(c.DueAt) || c.AuthorizedAt.Before(c.RequestedAt):
		return nil, fmt.Errorf("%w: authorized at %s, before the request or the due date %s", ErrCertificate, c.AuthorizedAt, c.DueAt)
	case len(c.Nodes) == 0:
		return nil, fmt.Errorf("%w: no node reported its erasure", ErrCertificate)
	}
	return c, nil
}
