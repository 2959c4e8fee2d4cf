package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// FormatVersion is the archive format this build writes and reads.
const FormatVersion = 1

// Header describes an archive. It is stored in clear (with its own checksum) at the start of
// the file, so that `urne backup verify` names the election, index and key before decrypting.
type Header struct {
	Format     int    `json:"format"`
	ElectionID string `json:"election_id"`
	// Index is the raft index the state reflects: every write acknowledged before the backup
	// started has an index at or below it.
	Index uint64 `json:"index"`
	// Term is the raft term of the entry at Index, as the leader knew it.
	Term uint64 `json:"term"`
	// TakenAt is the leader's time when it opened the read transaction of the snapshot.
	TakenAt time.Time `json:"taken_at"`
	// NodeID is the leader that streamed the state; NodeVersion its build.
	NodeID      string `json:"node_id"`
	NodeVersion string `json:"node_version,omitempty"`
	// Key names the key or passphrase that seals the archive and holds its check value.
	Key KeyInfo `json:"key"`
	// Salt makes this archive's keys its own.
	Salt []byte `json:"salt"`
	// Content says what the sealed stream holds: "" for a state snapshot (a backup),
	// ContentElectionArchive for an election's archive (package archive).
	Content string `json:"content,omitempty"`
}

// ContentElectionArchive marks the sealed stream of an election archive, which a backup
// restore must refuse and `urne archive verify` reads.
const ContentElectionArchive = "election-archive"

// KeyInfo says which secret seals an archive, without revealing it.
type KeyInfo struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	KDF  *KDF   `json:"kdf,omitempty"`
	// Check is derived from the secret and the salt; it tells a wrong key from a damaged chunk.
	Check []byte `json:"check"`
}

// Summary is what the writer learned from the whole state stream. It is sealed at the end of
// the archive, so the reader trusts it only once every chunk before it authenticated.
type Summary struct {
	// Size is the byte size of the state snapshot stream.
	Size        uint64 `json:"size"`
	Records     uint64 `json:"records"`
	Digest      []byte `json:"digest"`
	Voters      uint64 `json:"voters"`
	Emargements uint64 `json:"emargements"`
	Ballots     uint64 `json:"ballots"`
}

const maxHeaderJSON = 16 << 10

// encodeHeader returns the header frame payload: JSON followed by its SHA-256.
func encodeHeader(h Header) ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode backup header: %w", err)
	}
	if len(b) > maxHeaderJSON {
		return nil, fmt.Errorf("backup header of %d bytes exceeds %d", len(b), maxHeaderJSON)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...), nil
}

// decodeHeader checks the header's own checksum, then its fields.
func decodeHeader(p []byte) (Header, error) {
	var h Header
	if len(p) <= sha256.Size {
		return h, errorf(ErrCorrupt, "header frame of %d bytes is too short", len(p))
	}
	body, sum := p[:len(p)-sha256.Size], p[len(p)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return h, errorf(ErrCorrupt, "the header's checksum does not match: the header was damaged")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, errorf(ErrCorrupt, "the header is not valid: %v", err)
	}
	return h, h.check()
}

func (h Header) check() error {
	switch {
	case h.Format != FormatVersion:
		return errorf(ErrVersion, "the header says format %d; this build reads format %d", h.Format, FormatVersion)
	case h.ElectionID == "" || len(h.ElectionID) > 128:
		return errorf(ErrCorrupt, "the header names no valid election")
	case h.Index == 0:
		return errorf(ErrCorrupt, "the header gives raft index 0")
	case len(h.Salt) != saltSize:
		return errorf(ErrCorrupt, "the header's salt has %d bytes, want %d", len(h.Salt), saltSize)
	case len(h.Key.Check) != checkSize:
		return errorf(ErrCorrupt, "the header's key check has %d bytes, want %d", len(h.Key.Check), checkSize)
	}
	switch h.Key.Kind {
	case KindKeyFile:
		return checkKeyID(h.Key.ID)
	case KindPassphrase:
		if h.Key.KDF == nil {
			return errorf(ErrCorrupt, "the archive is sealed with a passphrase but gives no argon2id cost")
		}
		return h.Key.KDF.check()
	}
	return errorf(ErrCorrupt, "unknown key kind %q in the header", h.Key.Kind)
}
