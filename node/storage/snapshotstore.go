package storage

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"github.com/urne-vote/urne/keyring"
)

// snapshotStore encrypts snapshot contents as a keyring stream bound to the snapshot id. The
// inner store records the ciphertext size; every meta handed to raft carries the plaintext
// size instead, because raft checks the bytes it copies against SnapshotMeta.Size.
type snapshotStore struct {
	inner   raft.SnapshotStore
	streams StreamSealer
}

// NewSnapshotStore wraps inner so that snapshot contents are stored encrypted.
func NewSnapshotStore(inner raft.SnapshotStore, s StreamSealer) raft.SnapshotStore {
	return &snapshotStore{inner: inner, streams: s}
}

func snapshotAAD(id string) []byte { return []byte("raft-snapshot/" + id) }

func (ss *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := ss.inner.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &sealingSink{inner: sink, w: ss.streams.NewWriter(sink, snapshotAAD(sink.ID()))}, nil
}

func (ss *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
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

func (ss *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
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
