package fsm

import (
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
// (invariant 1): the time of the command and, for CREATE_ELECTION, the index key.
func Stamp(c *fsmpb.Command, now time.Time, rnd io.Reader) error {
	// UnixNano is undefined outside 1678..2262, so the range is checked on the date.
	if !now.After(time.Unix(0, 0)) || now.Year() >= 2262 {
		return fmt.Errorf("%w: stamp time %s is outside 1970..2261", ErrInvalid, now)
	}
	c.StampedAtUnixNano = now.UnixNano()
	if c.Type != fsmpb.CommandType_COMMAND_CREATE_ELECTION {
		return nil
	}
	create := &fsmpb.CreateElection{}
	if err := proto.Unmarshal(c.Payload, create); err != nil {
		return fmt.Errorf("%w: malformed CREATE_ELECTION payload: %v", ErrInvalid, err)
	}
	if len(create.IndexKey) != 0 {
		return nil
	}
	create.IndexKey = make([]byte, IndexKeySize)
	if _, err := io.ReadFull(rnd, create.IndexKey); err != nil {
		return fmt.Errorf("draw election index key: %w", err)
	}
	b, err := marshalOptions.Marshal(create)
	if err != nil {
		return fmt.Errorf("encode CREATE_ELECTION payload: %w", err)
	}
	c.Payload = b
	return nil
}
