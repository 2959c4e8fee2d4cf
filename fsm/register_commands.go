package fsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// The register's own commands join the dispatch table here, next to their handlers.
func init() {
	handlers[fsmpb.CommandType_COMMAND_REGISTER_STAMP] = typed(newMessage[fsmpb.RegisterStamp], checkRegisterStamp, applyRegisterStamp)
	handlers[fsmpb.CommandType_COMMAND_RECORD_EVENT] = typed(newMessage[fsmpb.RecordEvent], checkRecordEvent, applyRecordEvent)
	handlers[fsmpb.CommandType_COMMAND_RECORD_BUILD] = typed(newMessage[fsmpb.RecordBuild], checkRecordBuild, applyRecordBuild)
}

func checkRecordBuild(p *fsmpb.RecordBuild) error {
	if len(p.Sha256) != sha256.Size {
		return fmt.Errorf("%w: build digest of %d bytes, want %d", ErrInvalid, len(p.Sha256), sha256.Size)
	}
	return checkText("build version", p.Version)
}

// applyRecordBuild keeps the first build recorded; recording it again is a retry, recording
// another is refused.
func applyRecordBuild(s *applyState, c *fsmpb.Command, p *fsmpb.RecordBuild) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	old := &fsmpb.RecordBuild{}
	found, err := getMessage(s.tx, s.sealer, bucketMeta, keySealedBuild, old)
	if err != nil {
		return nil, err
	}
	if found && !bytes.Equal(old.Sha256, p.Sha256) {
		return nil, fmt.Errorf("%w: the election already runs with build %x (%s)", ErrInvalid, old.Sha256, old.Version)
	}
	if found {
		return &fsmpb.Response{}, nil
	}
	return &fsmpb.Response{}, putMessage(s.tx, s.sealer, bucketMeta, keySealedBuild, p)
}

// SealedBuild returns the build the election runs with: the one its seal names, or before a
// seal (a test election opens unsealed) the one RECORD_BUILD recorded; ok is false if neither is.
func (f *FSM) SealedBuild() (digest []byte, version string, ok bool, err error) {
	b := &fsmpb.RecordBuild{}
	err = f.view(func(tx *bolt.Tx) error {
		if ok, err = getMessage(tx, f.sealer, bucketMeta, keySealedBuild, b); err != nil {
			return err
		}
		e, err := readElection(tx, f.sealer)
		if seal := e.GetSeal(); err == nil && seal != nil {
			if !bytes.Equal(b.Sha256, seal.BuildDigest) {
				b.Version = "sealed " + stamp(seal.SealedAtUnixNano)
			}
			b.Sha256, ok = seal.BuildDigest, true
		}
		return err
	})
	if err != nil {
		return nil, "", false, fmt.Errorf("fsm: read recorded build: %w", err)
	}
	return b.Sha256, b.Version, ok, nil
}

func checkRegisterStamp(p *fsmpb.RegisterStamp) error {
	switch {
	case p.Seq == 0:
		return fmt.Errorf("%w: a timestamp must name the register entry it stamps", ErrInvalid)
	case len(p.Head) != audit.HashSize:
		return fmt.Errorf("%w: stamped hash of %d bytes, want %d", ErrInvalid, len(p.Head), audit.HashSize)
	case len(p.Token) == 0 || len(p.Token) > audit.MaxTokenSize:
		return fmt.Errorf("%w: timestamp token of %d bytes, want 1 to %d", ErrInvalid, len(p.Token), audit.MaxTokenSize)
	}
	return checkText("timestamp authority", p.Authority)
}

// applyRegisterStamp accepts a token only over the hash the register holds for that entry:
// a token over anything else would vouch for a register that never existed.
func applyRegisterStamp(s *applyState, c *fsmpb.Command, p *fsmpb.RegisterStamp) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	head, err := s.registerHead()
	if err != nil {
		return nil, err
	}
	if p.Seq > head.seq {
		return nil, fmt.Errorf("%w: the register has %d entries, the timestamp names entry %d", ErrInvalid, head.seq, p.Seq)
	}
	e, err := readRegisterEntry(s.tx, s.sealer, p.Seq)
	if err != nil {
		return nil, err
	}
	if h := e.Hash(); string(h[:]) != string(p.Head) {
		return nil, fmt.Errorf("%w: register entry %d hashes to %s, the timestamp is over %x", ErrInvalid, p.Seq, h, p.Head)
	}
	return &fsmpb.Response{}, nil
}

// maxEventText bounds the texts of a recorded event; a failure report may be long.
const maxEventText = audit.MaxFieldSize

func checkRecordEvent(p *fsmpb.RecordEvent) error {
	if p.Action == "" {
		return fmt.Errorf("%w: an event needs an action", ErrInvalid)
	}
	for _, f := range []struct{ name, v string }{{"action", p.Action}, {"object", p.Object}, {"outcome", p.Outcome}, {"detail", p.Detail}} {
		if len(f.v) > maxEventText || !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: event %s must be UTF-8 of at most %d bytes", ErrInvalid, f.name, maxEventText)
		}
	}
	return nil
}

// applyRecordEvent changes nothing but the register, which the generic record step extends.
func applyRecordEvent(s *applyState, c *fsmpb.Command, _ *fsmpb.RecordEvent) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	return &fsmpb.Response{}, nil
}
