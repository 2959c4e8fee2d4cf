package tally

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urne-vote/urne/ballot"
)

// Formats of the minutes and of a signature on them.
const (
	FormatMinutes   = "urne-pv-v1"
	FormatSignature = "urne-pv-signature-v1"
	maxMinutes      = 16 << 20
	maxSignature    = 64 << 10
)

// Minutes are the procès-verbal of the count. Members sign the exact bytes of its JSON file
// (Marshal), so any change to the file, even of whitespace, breaks every signature.
type Minutes struct {
	Format       string     `json:"format"`
	ElectionID   string     `json:"election_id"`
	ElectionName string     `json:"election_name,omitempty"`
	OpenedAt     *time.Time `json:"opened_at,omitempty"`
	ClosedAt     *time.Time `json:"closed_at,omitempty"`
	TalliedAt    time.Time  `json:"tallied_at"`
	// CeremonyID and Policy name the key ceremony; Fragments the holders whose fragments
	// rebuilt the key for this count.
	CeremonyID ballot.Hex `json:"ceremony_id,omitempty"`
	Policy     string     `json:"policy,omitempty"`
	Fragments  []string   `json:"fragments,omitempty"`
	Result     *Result    `json:"result"`
	// Anomalies are discrepancies the bureau must see (ballots ≠ émargements, rejected ballots).
	Anomalies []string `json:"anomalies,omitempty"`
	// Signatories are the bureau members who must sign.
	Signatories []Signatory `json:"signatories"`
}

// Signatory is a bureau member expected to sign the minutes.
type Signatory struct {
	Name     string `json:"name"`
	Role     string `json:"role,omitempty"`
	FullName string `json:"full_name,omitempty"`
}

// Marshal is the JSON file of the minutes: the bytes members sign.
func (m *Minutes) Marshal() ([]byte, error) {
	m.Format = FormatMinutes
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode minutes: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseMinutes reads a minutes file.
func ParseMinutes(data []byte) (*Minutes, error) {
	if len(data) > maxMinutes {
		return nil, errorf(ErrMinutes, "minutes file is %d bytes; at most %d are read", len(data), maxMinutes)
	}
	var m Minutes
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errorf(ErrMinutes, "minutes are not valid JSON: %v", err)
	}
	if m.Format != FormatMinutes {
		return nil, errorf(ErrMinutes, "minutes have format %q; this build reads %s", m.Format, FormatMinutes)
	}
	if m.Result == nil || len(m.Signatories) == 0 {
		return nil, errorf(ErrMinutes, "minutes of election %q have no result or no signatory", m.ElectionID)
	}
	return &m, nil
}

// Signature is one member's signature on a minutes file: Ed25519 over the file's exact bytes.
// PVSHA256 lets a reader see at once which version of the minutes was signed.
type Signature struct {
	Format    string     `json:"format"`
	Member    string     `json:"member"`
	PVSHA256  ballot.Hex `json:"pv_sha256"`
	Signature []byte     `json:"signature"`
}

// SignMinutes signs a minutes file with a member's signing key.
func SignMinutes(pvJSON []byte, member string, key ed25519.PrivateKey) *Signature {
	sum := sha256.Sum256(pvJSON)
	return &Signature{Format: FormatSignature, Member: member, PVSHA256: sum[:], Signature: ed25519.Sign(key, pvJSON)}
}

// ParseSignature reads a signature file.
func ParseSignature(data []byte) (*Signature, error) {
	if len(data) > maxSignature {
		return nil, errorf(ErrSignature, "signature file is %d bytes; at most %d are read", len(data), maxSignature)
	}
	var s Signature
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, errorf(ErrSignature, "signature file is not valid JSON: %v", err)
	}
	if s.Format != FormatSignature || s.Member == "" || len(s.Signature) != ed25519.SignatureSize || len(s.PVSHA256) != sha256.Size {
		return nil, errorf(ErrSignature, "signature file of %q is not a %s", s.Member, FormatSignature)
	}
	return &s, nil
}

// Marshal is the signature file's JSON text.
func (s *Signature) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode signature: %w", err)
	}
	return append(b, '\n'), nil
}

// VerifyPV checks a minutes file against signatures and the members' public keys: every
// signature must come from a known member and verify over the exact file, and every signatory
// the minutes name must have signed. It returns the verified minutes.
func VerifyPV(pvJSON []byte, signatures []*Signature, memberKeys map[string]ed25519.PublicKey) (*Minutes, error) {
	m, err := ParseMinutes(pvJSON)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pvJSON)
	signed := map[string]bool{}
	for _, s := range signatures {
		if err := verifyOne(pvJSON, sum[:], s, memberKeys); err != nil {
			return nil, err
		}
		signed[s.Member] = true
	}
	var missing []string
	for _, sg := range m.Signatories {
		if !signed[sg.Name] {
			missing = append(missing, sg.Name)
		}
	}
	if len(missing) > 0 {
		return nil, errorf(ErrUnsigned, "the minutes of election %q are not signed by %s", m.ElectionID, strings.Join(missing, ", "))
	}
	return m, nil
}

func verifyOne(pvJSON, sum []byte, s *Signature, memberKeys map[string]ed25519.PublicKey) error {
	if s == nil || s.Format != FormatSignature {
		return errorf(ErrSignature, "a signature is not a %s", FormatSignature)
	}
	pub, ok := memberKeys[s.Member]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return errorf(ErrSignature, "the minutes are signed by %q, who is not a bureau member of the ceremony record", s.Member)
	}
	if subtle.ConstantTimeCompare(s.PVSHA256, sum) != 1 {
		return errorf(ErrSignature, "%q signed minutes with SHA-256 %x; this file has SHA-256 %x: the minutes were altered after signing", s.Member, []byte(s.PVSHA256), sum)
	}
	if !ed25519.Verify(pub, pvJSON, s.Signature) {
		return errorf(ErrSignature, "the signature of %q does not verify over these minutes: the minutes or the signature were altered", s.Member)
	}
	return nil
}

// Anomalies lists what the bureau must see in a result.
func Anomalies(r *Result) []string {
	var out []string
	if r.Ballots != r.Emargements {
		out = append(out, fmt.Sprintf("the box holds %d ballots but the émargement list has %d entries", r.Ballots, r.Emargements))
	}
	for _, sc := range r.Scrutins {
		if sc.Emargements != nil && *sc.Emargements != sc.Ballots {
			out = append(out, fmt.Sprintf("scrutin %s: the box holds %d ballots but the émargement list has %d entries", sc.ID, sc.Ballots, *sc.Emargements))
		}
	}
	if n := len(r.Rejected); n > 0 {
		out = append(out, fmt.Sprintf("%d ballots could not be attributed to a scrutin (see rejected)", n))
	}
	return slices.Clip(out)
}
