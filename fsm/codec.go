package fsm

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Sizes bounding every command. MaxCommandSize leaves room for an import of
// MaxVotersPerCommand voters whose fields all have their maximum length (about 3.3 MiB).
const (
	CommandVersion      = 1
	MaxBallotSize       = 64 << 10
	MaxVotersPerCommand = 5000
	MaxCommandSize      = 4 << 20
	IndexKeySize        = 32
)

var marshalOptions = proto.MarshalOptions{Deterministic: true}

// NewCommand wraps a payload into a version-1 envelope of type t.
func NewCommand(t fsmpb.CommandType, payload proto.Message) (*fsmpb.Command, error) {
	c := &fsmpb.Command{Version: CommandVersion, Type: t}
	if payload == nil {
		return c, nil
	}
	b, err := marshalOptions.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", t, err)
	}
	c.Payload = b
	return c, nil
}

// Encode serializes an envelope for the raft log. It refuses what Decode would refuse,
// so a node never proposes an entry that every replica rejects.
func Encode(c *fsmpb.Command) ([]byte, error) {
	if c.GetVersion() != CommandVersion {
		return nil, fmt.Errorf("%w: command codec version %d, this node writes version %d",
			ErrInvalid, c.GetVersion(), CommandVersion)
	}
	b, err := marshalOptions.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("%w: encode command: %v", ErrInvalid, err)
	}
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("%w: command of %d bytes exceeds the %d-byte limit",
			ErrInvalid, len(b), MaxCommandSize)
	}
	return b, nil
}

// Decode parses a raft log entry into an envelope. Only the envelope is checked here
// (size, codec version); the payload is checked by Validate.
func Decode(b []byte) (*fsmpb.Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrInvalid)
	}
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("%w: command of %d bytes exceeds the %d-byte limit",
			ErrInvalid, len(b), MaxCommandSize)
	}
	c := &fsmpb.Command{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%w: malformed command envelope: %v", ErrInvalid, err)
	}
	if c.Version != CommandVersion {
		return nil, fmt.Errorf("%w: command codec version %d, this node reads version %d",
			ErrInvalid, c.Version, CommandVersion)
	}
	return c, nil
}

// Stamp fills in, on the leader, what the state machine may not compute itself
// (invariant 1): the time of the command and the random values some types carry: the index
// key of CREATE_ELECTION (kept if already set), the seed of ISSUE_IDENTIFIERS, the one-time
// code of REQUEST_OTP and the envelope nonce of VERIFY_OTP (always drawn afresh, so that no
// caller chooses them).
func Stamp(c *fsmpb.Command, now time.Time, rnd io.Reader) error {
	// UnixNano is undefined outside 1678..2262, so the range is checked on the date.
	if !now.After(time.Unix(0, 0)) || now.Year() >= 2262 {
		return fmt.Errorf("%w: stamp time %s is outside 1970..2261", ErrInvalid, now)
	}
	c.StampedAtUnixNano = now.UnixNano()
	draw, ok := randomStamps[c.Type]
	if !ok {
		return nil
	}
	return draw(c, rnd)
}

// randomStamps draw the random values of the command types that carry some.
var randomStamps = map[fsmpb.CommandType]func(c *fsmpb.Command, rnd io.Reader) error{
	fsmpb.CommandType_COMMAND_CREATE_ELECTION: stampPayload(func(p *fsmpb.CreateElection, rnd io.Reader) error {
		if len(p.IndexKey) != 0 {
			return nil
		}
		return drawBytes(rnd, &p.IndexKey, IndexKeySize, "election index key")
	}),
	fsmpb.CommandType_COMMAND_ISSUE_IDENTIFIERS: stampPayload(func(p *fsmpb.IssueIdentifiers, rnd io.Reader) error {
		return drawBytes(rnd, &p.Seed, SeedSize, "identifier seed")
	}),
	fsmpb.CommandType_COMMAND_REQUEST_OTP: stampPayload(func(p *fsmpb.RequestOTP, rnd io.Reader) error {
		code, err := drawCode(rnd)
		p.Code = code
		return err
	}),
	fsmpb.CommandType_COMMAND_VERIFY_OTP: stampPayload(func(p *fsmpb.VerifyOTP, rnd io.Reader) error {
		return drawBytes(rnd, &p.EnvelopeNonce, EnvelopeNonceSize, "envelope nonce")
	}),
}

// stampPayload decodes a payload of type T, lets draw fill it, and encodes it back.
func stampPayload[T any, P interface {
	*T
	proto.Message
}](draw func(P, io.Reader) error) func(*fsmpb.Command, io.Reader) error {
	return func(c *fsmpb.Command, rnd io.Reader) error {
		p := P(new(T))
		if err := proto.Unmarshal(c.Payload, p); err != nil {
			return fmt.Errorf("%w: malformed %s payload: %v", ErrInvalid, c.Type, err)
		}
		if err := draw(p, rnd); err != nil {
			return err
		}
		b, err := marshalOptions.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode %s payload: %w", c.Type, err)
		}
		c.Payload = b
		return nil
	}
}

func drawBytes(rnd io.Reader, dst *[]byte, n int, what string) error {
	*dst = make([]byte, n)
	if _, err := io.ReadFull(rnd, *dst); err != nil {
		return fmt.Errorf("draw %s: %w", what, err)
	}
	return nil
}

// drawCode draws a uniform six-digit code, rejecting the values that would bias the modulo.
func drawCode(rnd io.Reader) (string, error) {
	const space = 1_000_000
	const limit = (1 << 32) / space * space
	var b [4]byte
	for {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return "", fmt.Errorf("draw one-time code: %w", err)
		}
		if v := binary.BigEndian.Uint32(b[:]); v < limit {
			return fmt.Sprintf("%06d", v%space), nil
		}
	}
}
