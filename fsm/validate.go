package fsm

import (
	"crypto/sha256"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Bounds of the identifiers and texts a command may carry, in bytes.
const (
	MaxIDSize         = 128
	MaxTextSize       = 256
	maxSecretHashSize = 128
)

// Validate runs the request-time checks of a command: envelope, sizes, identifiers, required
// fields. A node runs it before proposing; Apply runs it again, so a command that slipped
// through is refused the same way on every replica. It accepts a command before or after
// Stamp; Apply additionally requires the stamp.
func Validate(c *fsmpb.Command) error {
	if c == nil {
		return fmt.Errorf("%w: nil command", ErrInvalid)
	}
	if c.Version != CommandVersion {
		return fmt.Errorf("%w: command codec version %d, this node speaks version %d",
			ErrInvalid, c.Version, CommandVersion)
	}
	if c.StampedAtUnixNano < 0 {
		return fmt.Errorf("%w: negative stamp time %d", ErrInvalid, c.StampedAtUnixNano)
	}
	if size := proto.Size(c); size > MaxCommandSize {
		return fmt.Errorf("%w: command of %d bytes exceeds the %d-byte limit", ErrInvalid, size, MaxCommandSize)
	}
	h, ok := handlers[c.Type]
	if !ok {
		return fmt.Errorf("%w: command type %d", ErrUnknownCommand, c.Type)
	}
	_, err := h.parse(c)
	return err
}

func checkCreateElection(p *fsmpb.CreateElection) error {
	if err := checkID("election id", p.ElectionId); err != nil {
		return err
	}
	if _, err := normalizeProfile(p.Profile); err != nil {
		return err
	}
	if err := checkText("election name", p.Name); err != nil {
		return err
	}
	if n := len(p.IndexKey); n != 0 && n != IndexKeySize {
		return fmt.Errorf("%w: index key of %d bytes, want %d", ErrInvalid, n, IndexKeySize)
	}
	return nil
}

func checkImportVoters(p *fsmpb.ImportVoters) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	if len(p.Voters)+len(p.Claims) == 0 {
		return fmt.Errorf("%w: an import of no voter and no homonym claim", ErrInvalid)
	}
	for _, c := range []struct {
		what string
		n    int
	}{{"voters", len(p.Voters)}, {"homonym claims", len(p.Claims)}} {
		if c.n > MaxVotersPerCommand {
			return fmt.Errorf("%w: %d %s in one import, limit %d", ErrInvalid, c.n, c.what, MaxVotersPerCommand)
		}
	}
	for i, v := range p.Voters {
		if err := CheckVoter(v); err != nil {
			return fmt.Errorf("voter %d of the import: %w", i, err)
		}
	}
	for i, c := range p.Claims {
		if err := checkID("voter id", c.VoterId); err != nil {
			return fmt.Errorf("homonym claim %d of the import: %w", i, err)
		}
		if len(c.Key) != sha256.Size {
			return fmt.Errorf("%w: homonym claim %d of the import has a key of %d bytes, want %d", ErrInvalid, i, len(c.Key), sha256.Size)
		}
	}
	return nil
}

// CheckVoter refuses what an import refuses of a voter record on its own, whatever the roll.
func CheckVoter(v *fsmpb.VoterRecord) error {
	if err := checkID("voter id", v.VoterId); err != nil {
		return err
	}
	for _, f := range []struct{ what, value string }{
		{"voter name", v.Name}, {"voter email", v.Email}, {"composante", v.Composante},
		{"collège", v.College}, {"secteur", v.Secteur},
	} {
		if err := checkText(f.what, f.value); err != nil {
			return err
		}
	}
	if v.DateOfBirth != "" {
		if err := checkDate("voter date of birth", v.DateOfBirth); err != nil {
			return err
		}
	}
	return checkSecretHash(v.SecretHash)
}

// secretHashPrefixes are the forms a stored secret may take: bcrypt, argon2id, and a bcrypt
// hash sealed by the node that imported it.
var secretHashPrefixes = []string{"$2a$", "$2b$", "$2y$", "$argon2id$", "$ubs1$"}

// checkSecretHash accepts a bcrypt or argon2id hash, a bcrypt hash sealed under the pepper
// key by the receiving node ("$ubs1$", see node), or nothing (test elections).
func checkSecretHash(h []byte) error {
	if len(h) == 0 {
		return nil
	}
	if len(h) > maxSecretHashSize {
		return fmt.Errorf("%w: secret hash of %d bytes, limit %d", ErrInvalid, len(h), maxSecretHashSize)
	}
	for _, prefix := range secretHashPrefixes {
		if len(h) >= len(prefix) && string(h[:len(prefix)]) == prefix { // compared, not copied
			return nil
		}
	}
	return fmt.Errorf("%w: the voter secret must be stored as a bcrypt or argon2id hash", ErrInvalid)
}

// checkDate accepts a calendar date YYYY-MM-DD between 1900 and 2100.
func checkDate(what, s string) error {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil || d.Year() < 1900 || d.Year() > 2100 {
		return fmt.Errorf("%w: %s %q is not a date YYYY-MM-DD between 1900 and 2100", ErrInvalid, what, s)
	}
	return nil
}

func checkTransition(p *fsmpb.Transition) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	if n := len(p.ArchiveDigest); n != 0 && n != sha256.Size {
		return fmt.Errorf("%w: archive digest of %d bytes, want %d", ErrInvalid, n, sha256.Size)
	}
	return checkBuildDigest(p.BuildDigest, false)
}

func checkBuildDigest(b []byte, required bool) error {
	if len(b) == 0 && !required {
		return nil
	}
	if len(b) != BuildDigestSize {
		return fmt.Errorf("%w: build digest of %d bytes, want %d", ErrInvalid, len(b), BuildDigestSize)
	}
	return nil
}

func checkCast(p *fsmpb.Cast) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	if err := checkID("request id", p.RequestId); err != nil {
		return err
	}
	if err := checkCastVoter(p); err != nil {
		return err
	}
	if len(p.Ballot) == 0 {
		return fmt.Errorf("%w: empty ballot", ErrInvalid)
	}
	if n := len(p.Ballot); n > MaxBallotSize {
		return fmt.Errorf("%w: ballot of %d bytes, at most %d", ErrBallotTooLarge, n, MaxBallotSize)
	}
	return nil
}

// checkCastVoter: an opaque cast names its voter; a session cast names a session (and no
// voter), a scrutin if any, and the envelope's nonce.
func checkCastVoter(p *fsmpb.Cast) error {
	if len(p.SessionHash) == 0 {
		if p.ScrutinId != "" || len(p.EnvelopeNonce) != 0 {
			return fmt.Errorf("%w: a cast without a session names no scrutin and no nonce", ErrInvalid)
		}
		return checkID("voter id", p.VoterId)
	}
	if p.VoterId != "" {
		return fmt.Errorf("%w: a session cast must not name its voter: the session does", ErrInvalid)
	}
	if err := checkTokenHash("session", p.SessionHash); err != nil {
		return err
	}
	if n := len(p.EnvelopeNonce); n != EnvelopeNonceSize {
		return fmt.Errorf("%w: envelope nonce of %d bytes, want %d", ErrInvalid, n, EnvelopeNonceSize)
	}
	return checkOptionalID("scrutin id", p.ScrutinId)
}

func checkTokenHash(what string, h []byte) error {
	if len(h) != TokenHashSize {
		return fmt.Errorf("%w: %s hash of %d bytes, want %d", ErrInvalid, what, len(h), TokenHashSize)
	}
	return nil
}

// checkID accepts 1 to MaxIDSize bytes of printable UTF-8.
func checkID(what, s string) error {
	if len(s) == 0 {
		return fmt.Errorf("%w: %s is missing", ErrInvalid, what)
	}
	return checkOptionalID(what, s)
}

func checkOptionalID(what, s string) error {
	if len(s) > MaxIDSize {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrInvalid, what, len(s), MaxIDSize)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	for i, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %s holds the non-printable character %U at byte %d", ErrInvalid, what, r, i)
		}
	}
	return nil
}

// checkText accepts up to MaxTextSize bytes of UTF-8 without control characters.
func checkText(what, s string) error {
	if len(s) > MaxTextSize {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrInvalid, what, len(s), MaxTextSize)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s holds the control character %U", ErrInvalid, what, r)
		}
	}
	return nil
}
