package node

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/transport/raftlayer"
)

// LocalState is what a stopped node's data directory says about its raft log and state.
type LocalState struct {
	NodeID       string `json:"node_id"`
	LastIndex    uint64 `json:"last_index"`
	LastTerm     uint64 `json:"last_term"`
	AppliedIndex uint64 `json:"applied_index"`
}

// offlineData is a stopped node's keyring, raft stores and state machine, opened without raft.
type offlineData struct {
	stores *raftStores
	fsm    *fsm.FSM
}

func (d *offlineData) close() {
	_ = d.fsm.Close()
	_ = d.stores.Close()
}

// openOffline opens the data of a stopped node. A running node holds the locks of raft.db and
// fsm.db: opening then fails after a short wait, saying so.
func openOffline(cfg Config, logger *slog.Logger) (*offlineData, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "keyring")); err != nil {
		return nil, fmt.Errorf("%w: node %s has no keyring in %s", ErrNoData, cfg.NodeID, cfg.DataDir)
	}
	kek, err := keyring.LoadKEK(keyring.KEKSource(cfg.KEK))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key of %s: %w", cfg.NodeID, err)
	}
	keys, err := keyring.Open(filepath.Join(cfg.DataDir, "keyring"), kek)
	if err != nil {
		return nil, err
	}
	// No live state: raft's offline recovery then restores the newest snapshot as the
	// reference it is, which the state machine holds already, instead of a full copy of the
	// database rebuilt over itself.
	f, stores, err := openStores(cfg.DataDir, cfg.NodeID, keys, logger, false)
	if err != nil {
		return nil, fmt.Errorf("node %s (is it still running?): %w", cfg.NodeID, err)
	}
	return &offlineData{stores: stores, fsm: f}, nil
}

// InspectDataDir reads how far a stopped node's log goes and what its state machine applied.
func InspectDataDir(cfg Config) (LocalState, error) {
	d, err := openOffline(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return LocalState{}, err
	}
	defer d.close()
	st := LocalState{NodeID: cfg.NodeID, AppliedIndex: d.fsm.AppliedIndex()}
	st.LastIndex, st.LastTerm, err = d.lastEntry()
	return st, err
}

// lastEntry returns the index and term of the last entry, in the log or in the latest snapshot.
func (d *offlineData) lastEntry() (uint64, uint64, error) {
	var index, term uint64
	metas, err := d.stores.snaps.List()
	if err != nil {
		return 0, 0, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 {
		index, term = metas[0].Index, metas[0].Term
	}
	last, err := d.stores.log.LastIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("raft log: %w", err)
	}
	if last > index {
		var l raft.Log
		if err := d.stores.log.GetLog(last, &l); err != nil {
			return 0, 0, fmt.Errorf("raft log entry %d: %w", last, err)
		}
		index, term = l.Index, l.Term
	}
	return index, term, nil
}

// RecoverAlone makes the stopped node the only voter of its cluster, keeping every entry of its
// log, committed or not (raft.RecoverCluster). Started again, it leads a cluster of one, and the
// leader adds the other servers back as they join. This is raft's unsafe recovery: it is safe
// only on the node whose log holds every acknowledged write, which `urne operator promote-dc`
// proves before calling it.
func RecoverAlone(cfg Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d, err := openOffline(cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()
	addr := raft.ServerAddress(advertised(cfg.Bind.Raft, cfg.Advertise.Raft))
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.NodeID)
	conf.Logger = raftlayer.NewHCLogger(logger, "raft")
	// The transport only encodes peers for snapshot metadata of old raft versions.
	_, trans := raft.NewInmemTransport(addr)
	defer trans.Close()
	only := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr, Suffrage: raft.Voter}}}
	if err := raft.RecoverCluster(conf, releasingFSM{d.fsm}, d.stores.log, d.stores.stable, d.stores.snaps, trans, only); err != nil {
		return fmt.Errorf("recover %s alone: %w", cfg.NodeID, err)
	}
	return nil
}

// releasingFSM releases each snapshot once persisted: raft.RecoverCluster never calls Release,
// and a snapshot's open read transaction would keep the state database from closing.
type releasingFSM struct{ *fsm.FSM }

func (f releasingFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return releasingSnapshot{s}, nil
}

type releasingSnapshot struct{ raft.FSMSnapshot }

func (s releasingSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	return s.FSMSnapshot.Persist(sink)
}
