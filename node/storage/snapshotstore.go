package storage

import (
	"bytes"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"github.com/urne-vote/urne/keyring"
)

// SnapshotStore encrypts snapshot contents as a keyring stream bound to the snapshot id. The
// inner store records the ciphertext size; every meta handed to raft carries the plaintext
// size instead, because raft checks the bytes it copies against SnapshotMeta.Size.
//
// With a LiveState, a snapshot that the state machine wrote as a reference to its own
// database opens as a full copy of that database, made as it is read: raft sends what Open
// gives to a follower that needs a snapshot, and restores what it gives at start.
type SnapshotStore struct {
	inner   raft.SnapshotStore
	streams StreamSealer
	live    LiveState
}

// LiveState is the state machine whose snapshots are references to its own database.
type LiveState interface {
	// SnapshotReference returns the index a snapshot's bytes refer to, ok=false when they
	// are not a reference.
	SnapshotReference(b []byte) (index uint64, ok bool)
	// ExpandSnapshot returns a full snapshot of the live state, at index or beyond, and its
	// exact size.
	ExpandSnapshot(index uint64) (size int64, full io.ReadCloser, err error)
}

// maxReferenceSize bounds the snapshots that Open reads whole to ask the LiveState whether
// they are references; a full snapshot is always longer.
const maxReferenceSize = 64

// NewSnapshotStore wraps inner so that snapshot contents are stored encrypted. live may be
// nil: references are then opened as they are.
func NewSnapshotStore(inner raft.SnapshotStore, s StreamSealer, live LiveState) *SnapshotStore {
	return &SnapshotStore{inner: inner, streams: s, live: live}
}

func snapshotAAD(id string) []byte { return []byte("raft-snapshot/" + id) }

func (ss *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := ss.inner.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &sealingSink{inner: sink, w: ss.streams.NewWriter(sink, snapshotAAD(sink.ID()))}, nil
}

func (ss *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := ss.inner.List()
	if err != nil {
		return nil, err
	}
	out := make([]*raft.SnapshotMeta, len(metas))
	for i, meta := range metas {
		if out[i], err = plaintextMeta(meta); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (ss *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, index, ref, err := ss.openPeeked(id)
	if err != nil || !ref {
		return meta, rc, err
	}
	rc.Close()
	size, full, err := ss.live.ExpandSnapshot(index)
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	expanded := *meta
	expanded.Size = size
	return &expanded, full, nil
}

// Reference returns the index that snapshot id refers to, ok=false when it is a full copy.
func (ss *SnapshotStore) Reference(id string) (index uint64, ok bool, err error) {
	_, rc, index, ok, err := ss.openPeeked(id)
	if rc != nil {
		rc.Close()
	}
	return index, ok, err
}

// openPeeked opens snapshot id. One that may be a reference (with a live state, a short
// snapshot) is read whole to ask the live state, and rc gives its bytes again.
func (ss *SnapshotStore) openPeeked(id string) (meta *raft.SnapshotMeta, rc io.ReadCloser, index uint64, ref bool, err error) {
	meta, rc, err = ss.openSealed(id)
	if err != nil || ss.live == nil || meta.Size > maxReferenceSize {
		return meta, rc, 0, false, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, nil, 0, false, fmt.Errorf("read snapshot %s: %w", id, err)
	}
	index, ref = ss.live.SnapshotReference(b)
	return meta, io.NopCloser(bytes.NewReader(b)), index, ref, nil
}

// openSealed opens snapshot id as it is stored: its plaintext, whatever it holds.
func (ss *SnapshotStore) openSealed(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := ss.inner.Open(id)
	if err != nil {
		return nil, nil, err
	}
	plain, err := plaintextMeta(meta)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	r, err := ss.streams.NewReader(rc, snapshotAAD(id))
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	return plain, openedSnapshot{Reader: r, Closer: rc}, nil
}

// plaintextMeta copies meta (the inner store may share it) with Size made the plaintext size.
func plaintextMeta(meta *raft.SnapshotMeta) (*raft.SnapshotMeta, error) {
	size, err := keyring.PlaintextSize(meta.Size)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	plain := *meta
	plain.Size = size
	return &plain, nil
}

// openedSnapshot reads plaintext and closes the inner snapshot file.
type openedSnapshot struct {
	io.Reader
	io.Closer
}

// sealingSink encrypts what the FSM writes; Close writes the final chunk before the inner
// sink commits the snapshot, so a snapshot without it is never kept.
type sealingSink struct {
	inner raft.SnapshotSink
	w     io.WriteCloser
}

func (s *sealingSink) ID() string { return s.inner.ID() }

func (s *sealingSink) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *sealingSink) Close() error {
	if err := s.w.Close(); err != nil {
		_ = s.inner.Cancel()
		return fmt.Errorf("seal snapshot %s: %w", s.inner.ID(), err)
	}
	return s.inner.Close()
}

func (s *sealingSink) Cancel() error { return s.inner.Cancel() }
