package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node/storage"
	"github.com/urne-vote/urne/transport/raftlayer"
)

// seedTerm is the term of a seeded snapshot. A restored cluster is a new cluster: its first
// election moves to term 2, so every entry it appends has a higher term than the snapshot,
// as raft's log matching needs. The original term would be meaningless here.
const seedTerm = 1

// Seed is a node data directory being filled from a state snapshot stream, so that the node
// starts at the snapshot's index: a new keyring sealed by the node's key-encryption key and one
// raft snapshot, which the node restores into its state machine when it starts (its state
// database is then behind the snapshot). Write the stream, then Commit; Abort on any error.
type Seed struct {
	dir   string
	index uint64
	sink  raft.SnapshotSink
}

// SeedDataDir prepares cfg.DataDir, which must not exist or be empty, to start from the state
// at index. The snapshot's raft configuration is cfg.Bootstrap, the cluster the node belongs to.
func SeedDataDir(cfg Config, index uint64) (*Seed, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if len(cfg.Bootstrap) == 0 || index == 0 {
		return nil, fmt.Errorf("seeding %s: a bootstrap list and a positive index are required", cfg.NodeID)
	}
	if err := requireEmptyDir(cfg.DataDir); err != nil {
		return nil, err
	}
	s := &Seed{dir: cfg.DataDir, index: index}
	sink, err := s.create(cfg, index)
	if err != nil {
		_ = os.RemoveAll(cfg.DataDir)
		return nil, err
	}
	s.sink = sink
	return s, nil
}

func (s *Seed) create(cfg Config, index uint64) (raft.SnapshotSink, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	kek, err := keyring.LoadKEK(keyring.KEKSource(cfg.KEK))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key of %s: %w", cfg.NodeID, err)
	}
	keys, err := keyring.Create(filepath.Join(cfg.DataDir, "keyring"), kek)
	if err != nil {
		return nil, err
	}
	inner, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, "snapshots"), 2, raftlayer.NewHCLogger(slog.New(slog.DiscardHandler), "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	// The transport only encodes peers for snapshot metadata of old raft versions.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	return storage.NewSnapshotStore(inner, keys, nil).Create(raft.SnapshotVersionMax, index, seedTerm,
		bootstrapConfiguration(cfg.Bootstrap), index, trans)
}

// Write adds state bytes to the snapshot.
func (s *Seed) Write(p []byte) (int, error) { return s.sink.Write(p) }

// Commit seals and keeps the snapshot, and leaves the mark that makes the node record the
// restore in the activity register when it starts.
func (s *Seed) Commit() error {
	if err := s.sink.Close(); err != nil {
		s.Abort()
		return fmt.Errorf("seal the seeded snapshot: %w", err)
	}
	if err := writeRestoreMark(s.dir, s.index); err != nil {
		s.Abort()
		return err
	}
	return nil
}

// Abort throws the seeded data directory away.
func (s *Seed) Abort() {
	if s.sink != nil {
		_ = s.sink.Cancel()
	}
	_ = os.RemoveAll(s.dir)
}

var _ io.Writer = (*Seed)(nil)

// bootstrapConfiguration is the raft configuration of a bootstrap list: voters for roles that
// vote, nonvoters for storage points.
func bootstrapConfiguration(peers []Peer) raft.Configuration {
	var servers []raft.Server
	for _, p := range peers {
		suffrage := raft.Voter
		if !p.Role.Voting() {
			suffrage = raft.Nonvoter
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Raft), Suffrage: suffrage})
	}
	return raft.Configuration{Servers: servers}
}

// requireEmptyDir refuses a folder that holds anything: seeding never mixes with old data.
func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("data dir %s is not empty: refusing to seed it over existing data", dir)
	}
	return nil
}
