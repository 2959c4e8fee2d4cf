package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// HashSize is the size of an entry hash (SHA-256).
const HashSize = sha256.Size

// Hash is the SHA-256 of an entry's canonical encoding; each entry holds its predecessor's.
type Hash [HashSize]byte

// String is the lowercase hex form used in exports and messages.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads the hex form of a hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		return h, fmt.Errorf("%w: %q is not a %d-byte hex hash", ErrFormat, s, HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// Sentinel errors.
var (
	// ErrFormat: bytes or a line that is not a register entry or export of this version.
	ErrFormat = errors.New("malformed activity register")
	// ErrTampered: the register was changed, cut, extended or reordered after it was written;
	// the error is a *BadEntryError naming the first bad entry.
	ErrTampered = errors.New("activity register tampered with")
)

// Outcomes of an action. A refusal is recorded as OutcomeRefused followed by its reason.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// Entry is one line of the activity register. Only Connection stays outside the hash: its
// digest is chained instead, so that the IP address and connection time can be erased at the
// end of their retention period without breaking the chain.
type Entry struct {
	Seq       uint64 // 1 for the first entry
	Prev      Hash   // hash of entry Seq-1; zero for the first
	Time      int64  // leader-stamped, Unix nanoseconds
	RaftIndex uint64 // log index of the command that made the entry, 0 if none
	Actor     string // principal: "client:organizer", "node:dc1-a", ...
	Action    string
	Object    string
	Outcome   string
	Detail    string

	// HasConnection says ConnectionDigest commits to a Connection (present or erased).
	HasConnection    bool
	ConnectionDigest Hash
	Connection       *Connection

	// Stamp, on a timestamp entry, is a trusted timestamp over an earlier entry.
	Stamp *Stamp
}

// Stamp is an RFC 3161 token over the hash of entry Seq, obtained from Authority.
type Stamp struct {
	Seq       uint64
	Head      Hash
	Authority string
	Token     []byte
}

// Hash returns the SHA-256 of the entry's canonical encoding.
func (e *Entry) Hash() Hash {
	return sha256.Sum256(e.Canonical())
}

// When returns the leader-stamped time.
func (e *Entry) When() time.Time { return time.Unix(0, e.Time).UTC() }

// SetConnection attaches c and its digest to the entry.
func (e *Entry) SetConnection(c *Connection) {
	e.Connection = c
	e.HasConnection = c != nil
	e.ConnectionDigest = Hash{}
	if c != nil {
		e.ConnectionDigest = c.Digest()
	}
}

// EraseConnection drops the connection details and keeps their digest: the chain still verifies.
func (e *Entry) EraseConnection() { e.Connection = nil }

// Check reports a field out of its bounds or an inconsistent connection.
func (e *Entry) Check() error {
	for _, f := range []struct {
		name, v string
	}{{"actor", e.Actor}, {"action", e.Action}, {"object", e.Object}, {"outcome", e.Outcome}, {"detail", e.Detail}} {
		if len(f.v) > MaxFieldSize {
			return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrFormat, f.name, len(f.v), MaxFieldSize)
		}
		// Exports are JSON: any other byte sequence would not survive the round trip.
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrFormat, f.name)
		}
	}
	// Whether the details still match their digest is for the verifier to say.
	if e.Connection != nil && !e.HasConnection {
		return fmt.Errorf("%w: connection details without a connection digest", ErrFormat)
	}
	if e.Stamp != nil && len(e.Stamp.Token) > MaxTokenSize {
		return fmt.Errorf("%w: token of %d bytes, limit %d", ErrFormat, len(e.Stamp.Token), MaxTokenSize)
	}
	return nil
}

// Retention classes of connection details, after the seeds' retention periods.
const (
	// RetentionLogs: IP address and connection time in the logging system, 180 days.
	RetentionLogs = "logs-180d"
	// RetentionSession: user session traceability, 7 days.
	RetentionSession = "session-7d"
)

// RetentionPeriod returns how long connection details of class are kept; false if unknown.
func RetentionPeriod(class string) (time.Duration, bool) {
	switch class {
	case RetentionLogs:
		return 180 * 24 * time.Hour, true
	case RetentionSession:
		return 7 * 24 * time.Hour, true
	}
	return 0, false
}

// Connection is where and when an actor connected, kept for its retention period only.
// Salt makes the digest that outlives it useless for guessing the address.
type Connection struct {
	IP          string
	ConnectedAt int64 // Unix nanoseconds
	Retention   string
	Salt        []byte
}

// Digest commits to the connection details.
func (c *Connection) Digest() Hash {
	var w encoder
	w.str("urne-audit-connection-v1")
	w.bytes(c.Salt)
	w.str(c.IP)
	w.u64(uint64(c.ConnectedAt))
	w.str(c.Retention)
	return sha256.Sum256(w.b)
}

// ExpiredAt reports whether the connection details are past their retention at now.
func (c *Connection) ExpiredAt(now time.Time) bool {
	d, ok := RetentionPeriod(c.Retention)
	return ok && now.Sub(time.Unix(0, c.ConnectedAt)) > d
}
