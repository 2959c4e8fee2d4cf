package pki

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Kinds of identity a certificate can carry.
const (
	KindNode   = "node"
	KindClient = "client"
)

// Client roles issued by `urne cluster init`. A role is a plain name: others may be issued.
const (
	RoleOperator  = "operator"
	RoleOrganizer = "organizer"
	RoleApp       = "app"
	RoleBureau    = "bureau"
	RoleObserver  = "observer"
)

// uriScheme is the scheme of the URI SAN that names an identity: urne://<election>/<kind>/<name>.
const uriScheme = "urne"

// caKind is the path of the CA certificate's own URI (urne://<election>/ca), which LoadCA reads
// to learn the election; it is never accepted as a peer identity.
const caKind = "ca"

// maxNameLen bounds election ids, node ids and roles so they fit in DNS labels and log lines.
const maxNameLen = 64

// Identity is who a certificate speaks for: a node or a client role of one election.
type Identity struct {
	ElectionID string
	Kind       string // KindNode or KindClient
	Name       string // node id, or client role
}

// String is the identity's URI, exactly as it appears in the certificate.
func (i Identity) String() string {
	return uriScheme + "://" + i.ElectionID + "/" + i.Kind + "/" + i.Name
}

// URI is the identity as a URI SAN.
func (i Identity) URI() *url.URL {
	return &url.URL{Scheme: uriScheme, Host: i.ElectionID, Path: "/" + i.Kind + "/" + i.Name}
}

// Validate checks the kind and that every part follows the naming rule.
func (i Identity) Validate() error {
	if i.Kind != KindNode && i.Kind != KindClient {
		return fmt.Errorf("%w: kind %q is neither %q nor %q", ErrNoIdentity, i.Kind, KindNode, KindClient)
	}
	if err := ValidateName(i.ElectionID); err != nil {
		return fmt.Errorf("election id: %w", err)
	}
	if err := ValidateName(i.Name); err != nil {
		return fmt.Errorf("%s name: %w", i.Kind, err)
	}
	return nil
}

// ValidateName checks an election id, node id or client role: 1 to 64 letters, digits, '.', '_'
// or '-', not starting with '.' or '-'. The rule keeps names valid in URIs, host names and paths.
func ValidateName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters long", ErrInvalidName, name, maxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: %q must not start with %q", ErrInvalidName, name, name[0])
	}
	for _, r := range name {
		if !nameChar(r) {
			return fmt.Errorf("%w: %q holds %q; use letters, digits, '.', '_' or '-'", ErrInvalidName, name, r)
		}
	}
	return nil
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// IdentityOf reads the one urne:// URI SAN of a certificate. It does not verify the certificate:
// call it on certificates a TLS configuration of this package already checked.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, ErrNoCertificate
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if u != nil && strings.EqualFold(u.Scheme, uriScheme) {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q has no %s:// URI", ErrNoIdentity, cert.Subject.String(), uriScheme)
	case 1:
		return parseIdentityURI(found[0])
	default:
		return Identity{}, fmt.Errorf("%w: certificate %q has %d %s:// URIs", ErrNoIdentity, cert.Subject.String(), len(found), uriScheme)
	}
}

// ParseIdentity parses an identity URI such as urne://acme-2026/node/n1.
func ParseIdentity(uri string) (Identity, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrNoIdentity, err)
	}
	return parseIdentityURI(u)
}

func parseIdentityURI(u *url.URL) (Identity, error) {
	election, kind, name, err := splitURI(u)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{ElectionID: election, Kind: kind, Name: name}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", u.String(), err)
	}
	return id, nil
}

// splitURI takes urne://<election>/<kind>[/<name>] apart, refusing anything else a URI may hold.
func splitURI(u *url.URL) (election, kind, name string, err error) {
	if !strings.EqualFold(u.Scheme, uriScheme) || u.Opaque != "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawPath != "" {
		return "", "", "", fmt.Errorf("%w: %q is not of the form %s://<election>/<kind>/<name>", ErrNoIdentity, u.String(), uriScheme)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch len(parts) {
	case 1:
		return u.Host, parts[0], "", nil
	case 2:
		return u.Host, parts[0], parts[1], nil
	default:
		return "", "", "", fmt.Errorf("%w: %q has %d path segments, want 2", ErrNoIdentity, u.String(), len(parts))
	}
}

// describeCert names a certificate for an error message: its identity if it has one, else its subject.
func describeCert(cert *x509.Certificate) string {
	if id, err := IdentityOf(cert); err == nil {
		return id.String()
	}
	if s := cert.Subject.String(); s != "" {
		return s
	}
	return "(certificate without subject)"
}

// describeIssuer names a certificate's issuer by common name when it has one.
func describeIssuer(cert *x509.Certificate) string {
	if cert.Issuer.CommonName != "" {
		return cert.Issuer.CommonName
	}
	return cert.Issuer.String()
}
