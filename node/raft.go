package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/internal/boltwalk"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node/storage"
	"github.com/urne-vote/urne/transport/raftlayer"
)

// raftStores are raft's log, stable and snapshot stores, each encrypting what it writes.
type raftStores struct {
	bolt   *raftboltdb.BoltStore
	log    raft.LogStore
	stable raft.StableStore
	snaps  *storage.SnapshotStore
}

// openStores opens a data directory's state database and raft stores. Each file is read
// whole before anything writes to it: the state database's walk opens every value, and
// bbolt's consistency check walks the raft log. They run side by side, each the work of one
// core, so a start at a million ballots waits for the longer of the two instead of both.
// live says whether raft's snapshots refer to the state database (a running node) or not
// (offline recovery, where a snapshot restored is the reference it is).
func openStores(dir, nodeID string, keys *keyring.Keyring, logger *slog.Logger, live bool) (*fsm.FSM, *raftStores, error) {
	checked := make(chan error, 1)
	go func() { checked <- checkRaftLog(dir) }()
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), keys, logger)
	if checkErr := <-checked; err != nil || checkErr != nil {
		if err == nil {
			f.Close()
			return nil, nil, checkErr
		}
		return nil, nil, errors.Join(fmt.Errorf("state machine: %w", err), checkErr)
	}
	var state storage.LiveState
	if live {
		state = f
	}
	stores, err := openRaftStores(dir, nodeID, keys, state, logger)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, stores, nil
}

// checkRaftLog opens an existing raft.db read-only and runs bbolt's consistency check, so
// that a corrupt file is reported before anything writes to it.
func checkRaftLog(dir string) (err error) {
	path := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	defer corruptOnPanic(path, &err)
	db, err := bolt.Open(path, 0o600, boltwalk.Options(2*time.Second))
	if err != nil {
		return fmt.Errorf("raft log %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("raft log %s: consistency check failed: %w", path, err)
		}
		return nil
	})
}

// corruptOnPanic turns the panic bbolt raises on some corrupt pages of the raft log at path
// into *err: a corrupt file must be an error, not a crash.
func corruptOnPanic(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("raft log %s is corrupt: %v", path, r)
	}
}

// openRaftStores opens raft.db (log and stable store, behind a log cache) and the snapshot folder,
// whose snapshots are references to live's database. nodeID names the node's failpoints.
// checkRaftLog has read the file first.
func openRaftStores(dir, nodeID string, keys *keyring.Keyring, live storage.LiveState, logger *slog.Logger) (s *raftStores, err error) {
	path := filepath.Join(dir, "raft.db")
	defer corruptOnPanic(path, &err)
	bs, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: raftLogOptions()})
	if err != nil {
		return nil, fmt.Errorf("raft log %s: %w", path, err)
	}
	s = &raftStores{bolt: bs}
	s.stable = storage.NewStableStore(bs, keys)
	if _, err := s.stable.GetUint64([]byte("CurrentTerm")); err != nil && !isNotFound(err) {
		bs.Close()
		return nil, fmt.Errorf("raft stable store %s does not open with this keyring: %w", path, err)
	}
	logs := withLogFailpoints(storage.NewLogStore(bs, keys), nodeID) // a failing disk sits under the rest
	cache, err := storage.NewLogCache(logCacheEntries, logCacheBytes, storage.NewTruncationSafeLogStore(logs))
	if err != nil {
		bs.Close()
		return nil, err
	}
	s.log = cache
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, raftlayer.NewHCLogger(logger, "snapshots"))
	if err != nil {
		bs.Close()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	s.snaps = storage.NewSnapshotStore(snaps, keys, live)
	return s, nil
}

// raftLogOptions open raft.db with bbolt's hash-map freelist, not written at each commit. Each
// snapshot compacts up to SnapshotThreshold entries at once, which frees a large share of the
// file's pages; bbolt's defaults (a sorted array, written whole by every commit) then rewrite
// that list, megabytes at a million voters, with every append until the next entries have
// taken the pages back (BenchmarkRaftLogAppend). A node that opens raft.db rebuilds the list
// by walking the file's pages, as checkRaftLog already reads it whole.
func raftLogOptions() *bolt.Options {
	return &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true}
}

// The raft log cache holds the last logCacheEntries entries, up to logCacheBytes in all: a
// thousand cast batches, but only a few dozen import batches of a megabyte each.
const (
	logCacheEntries = 1024
	logCacheBytes   = 64 << 20
)

func isNotFound(err error) bool {
	return err != nil && (err.Error() == "not found" || errors.Is(err, raftboltdb.ErrKeyNotFound))
}

// Close closes raft.db.
func (s *raftStores) Close() error {
	if s == nil || s.bolt == nil {
		return nil
	}
	return s.bolt.Close()
}

// raftConfig builds raft's configuration from the node's profile.
func (n *Node) raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.cfg.NodeID)
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout = n.cfg.Profile.raftTimeouts()
	c.SnapshotThreshold = n.cfg.SnapshotThreshold
	c.SnapshotInterval, _ = n.cfg.snapshotInterval() // checked by Validate
	c.TrailingLogs = n.cfg.TrailingLogs
	if c.TrailingLogs == 0 {
		c.TrailingLogs = defaultTrailingLogs
	}
	c.BatchApplyCh = true
	c.MaxAppendEntries = 256
	// The FSM keeps its own applied index in bbolt; restoring the snapshot at every start
	// would only rebuild what is already on disk. Restore runs when the database is behind.
	c.NoSnapshotRestoreOnStart = true
	c.Logger = raftlayer.NewHCLogger(n.log, "raft")
	n.leaderNotify = make(chan bool, 16)
	c.NotifyCh = n.leaderNotify
	return c
}

// startRaft opens the raft listener and transport, builds raft and bootstraps a new cluster.
func (n *Node) startRaft() error {
	ln, err := net.Listen("tcp", n.cfg.Bind.Raft)
	if err != nil {
		return fmt.Errorf("raft listener: %w", err)
	}
	if n.opts.WrapListener != nil {
		ln = n.opts.WrapListener(ln)
	}
	adv, err := net.ResolveTCPAddr("tcp", advertised(n.cfg.Bind.Raft, n.cfg.Advertise.Raft))
	if err != nil {
		ln.Close()
		return fmt.Errorf("raft advertise address: %w", err)
	}
	n.raftLayer = raftlayer.New(ln, adv, n.serverTLS, n.clientTLS, n.opts.Dialer, n.log)
	n.transport = raftlayer.NewTransport(n.raftLayer, n.log)
	conf := n.raftConfig()
	if err := n.restoreIfBehind(conf); err != nil {
		return err
	}
	n.raft, err = raft.NewRaft(conf, withFSMFailpoints(timedFSM{n.fsm, n.metrics}, n.cfg.NodeID), n.stores.log, n.stores.stable, n.stores.snaps, n.transport)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	n.raftLayer.OnHangup(n.leaderHangup)
	return n.bootstrap()
}

// restoreIfBehind lets raft restore the latest snapshot at start when the state machine's
// database is older than it: a seeded data directory, or a snapshot installed by the leader
// whose restore a crash interrupted. A snapshot that refers to the database (the ones this
// node takes) cannot rebuild it: a database behind one was replaced or lost, and the node
// refuses to start rather than apply the log to the wrong state.
func (n *Node) restoreIfBehind(conf *raft.Config) error {
	metas, err := n.stores.snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	applied := n.fsm.AppliedIndex()
	if len(metas) == 0 || metas[0].Index <= applied {
		return nil
	}
	index, ref, err := n.stores.snaps.Reference(metas[0].ID)
	if err != nil {
		return fmt.Errorf("read snapshot %s: %w", metas[0].ID, err)
	}
	if ref && index <= applied {
		return nil // the database holds what the snapshot refers to; raft's own entries followed
	}
	if ref {
		return fmt.Errorf("%w: the state database is at index %d, behind this node's latest snapshot (index %d), "+
			"which refers to the database instead of copying it: the database was replaced or lost. "+
			"Remove the node and add it back with an empty data directory so that the leader sends it the state, "+
			"or restore the election from a backup", fsm.ErrCorrupt, applied, index)
	}
	n.log.Warn("state machine is behind the latest snapshot; restoring it",
		"applied", applied, "snapshot", metas[0].Index)
	conf.NoSnapshotRestoreOnStart = false
	return nil
}

// bootstrap writes the initial configuration when this node is listed in it and has no state.
func (n *Node) bootstrap() error {
	if len(n.cfg.Bootstrap) == 0 {
		return nil
	}
	has, err := raft.HasExistingState(n.stores.log, n.stores.stable, n.stores.snaps)
	if err != nil || has {
		return err
	}
	listed := false
	for _, p := range n.cfg.Bootstrap {
		listed = listed || p.ID == n.cfg.NodeID
	}
	if !listed {
		return nil
	}
	conf := bootstrapConfiguration(n.cfg.Bootstrap)
	n.log.Info("bootstrapping cluster", "servers", len(conf.Servers))
	err = n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

// slogWriter forwards the text lines of a standard or hclog logger to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	level := slog.LevelInfo
	switch {
	case containsAny(msg, "[ERROR]", "[ERR]"):
		level = slog.LevelError
	case containsAny(msg, "[WARN]"):
		level = slog.LevelWarn
	case containsAny(msg, "[DEBUG]", "[TRACE]"):
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

var _ io.Writer = slogWriter{}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}
