package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/urne-vote/urne/archive"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/node/storage"
	"github.com/urne-vote/urne/transport/urnepb"
)

// erasureInterval is how often every node looks for an authorized destruction it has not
// carried out yet.
const erasureInterval = 2 * time.Second

// raftStableKeys are the keys raft keeps in its stable store.
var raftStableKeys = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm"), []byte("LastVoteCand")}

// RequestDestruction is the processor's (operator's) step.
func (s *operatorService) RequestDestruction(ctx context.Context, req *urnepb.DestructionRequest) (*urnepb.DestructionStatus, error) {
	return s.destructionStep(ctx, fsmpb.CommandType_COMMAND_REQUEST_DESTRUCTION, req)
}

// AuthorizeDestruction is the controller's (organizer's) step; once applied, every node
// erases its data.
func (s *operatorService) AuthorizeDestruction(ctx context.Context, req *urnepb.DestructionRequest) (*urnepb.DestructionStatus, error) {
	return s.destructionStep(ctx, fsmpb.CommandType_COMMAND_AUTHORIZE_DESTRUCTION, req)
}

func (s *operatorService) destructionStep(ctx context.Context, t fsmpb.CommandType, req *urnepb.DestructionRequest) (*urnepb.DestructionStatus, error) {
	cmd, err := fsm.NewCommand(t, &fsmpb.DestructionStep{Reason: req.GetReason()})
	if err != nil {
		return nil, toStatus(err)
	}
	cmd.Actor = actorFrom(ctx)
	resp, _, err := s.n.Propose(ctx, cmd)
	if err == nil {
		err = responseError(resp)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return s.Destruction(ctx, &urnepb.DestructionStatusRequest{})
}

// BackupErasureID is the name the managed backups' erasure is recorded under.
const BackupErasureID = "backups"

// RecordBackupErasure records the operator's erasure of the managed backups and archives.
func (s *operatorService) RecordBackupErasure(ctx context.Context, req *urnepb.BackupErasure) (*urnepb.DestructionStatus, error) {
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_RECORD_ERASURE,
		&fsmpb.RecordErasure{NodeId: BackupErasureID, Keys: req.GetKeys(), Files: req.GetFiles()})
	if err != nil {
		return nil, toStatus(err)
	}
	cmd.Actor = actorFrom(ctx)
	resp, _, err := s.n.Propose(ctx, cmd)
	if err == nil {
		err = responseError(resp)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return s.Destruction(ctx, &urnepb.DestructionStatusRequest{})
}

// Destruction answers the destruction record and, once every server of the configuration
// reported its erasure, the certificate signed with the cluster's receipt key.
func (s *operatorService) Destruction(ctx context.Context, _ *urnepb.DestructionStatusRequest) (*urnepb.DestructionStatus, error) {
	if err := s.n.ReadBarrier(ctx, urnepb.Consistency_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, toStatus(err)
	}
	d, electionID, archiveDigest, err := s.n.destruction()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &urnepb.DestructionStatus{}
	if d == nil {
		return out, nil
	}
	if out.RecordJson, err = protojson.Marshal(d); err != nil {
		return nil, toStatus(err)
	}
	servers, err := s.n.configurationServers()
	if err != nil {
		return nil, toStatus(err)
	}
	servers = append(servers, BackupErasureID) // the certificate waits for the backups too
	cert, err := archive.NewCertificate(electionID, archiveDigest, d, servers)
	if err != nil || s.n.cfg.ReceiptKeyFile == "" {
		return out, nil // not complete yet, or no key to sign with: the record says why
	}
	priv, err := ReadReceiptKey(s.n.cfg.ReceiptKeyFile)
	if err != nil {
		return nil, toStatus(err)
	}
	out.Certificate, out.Signature = cert, archive.SignCertificate(priv, cert)
	return out, nil
}

func (n *Node) destruction() (*fsmpb.Destruction, string, []byte, error) {
	e, _, err := n.fsm.ElectionState()
	if err != nil || e == nil {
		return nil, "", nil, err
	}
	return e.Destruction, e.ElectionId, e.ArchiveDigest, nil
}

func (n *Node) configurationServers() ([]string, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	slices.Sort(ids)
	return ids, nil
}

// erasureLoop carries out an authorized destruction on this node once, then reports it. A
// node that was down catches up at its restart: the record says it has not reported yet.
func (n *Node) erasureLoop() {
	defer n.wg.Done()
	t := time.NewTicker(erasureInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		d := n.fsm.LatestElection().GetDestruction()
		if d.GetAuthorizedAtUnixNano() == 0 ||
			slices.ContainsFunc(d.Erasures, func(e *fsmpb.RecordErasure) bool { return e.NodeId == n.cfg.NodeID }) {
			continue
		}
		report, err := n.eraseData()
		if err != nil {
			n.log.Error("erasing this node's data after the authorized destruction failed; will retry", "err", err)
			continue
		}
		n.proposeErasure(report)
	}
}

// eraseData makes everything this node wrote before now unreadable: a new data key seals the
// state database (rewritten whole), the raft snapshot taken now and raft's stable values; the
// raft log is compacted up to that snapshot; the older snapshots are removed; and the older
// data keys are destroyed, which erases every copy of what they sealed (the freed pages of
// raft.db and fsm.db, copies of the files, old snapshots). The keys are destroyed only once
// everything still needed was checked to open without them.
func (n *Node) eraseData() (*fsmpb.RecordErasure, error) {
	old := slices.Clone(n.keys.KeyIDs())
	if _, err := n.keys.Rotate(); err != nil {
		return nil, err
	}
	if err := n.fsm.Reseal(); err != nil {
		return nil, err
	}
	if err := storage.ResealStable(n.stores.stable, raftStableKeys...); err != nil {
		return nil, fmt.Errorf("reseal raft's stable store: %w", err)
	}
	removed, err := n.compactRaft()
	if err != nil {
		return nil, err
	}
	aside, err := n.removeSetAside()
	if err != nil {
		return nil, err
	}
	removed = append(removed, aside...)
	if err := n.checkReadableWithout(old); err != nil {
		return nil, err
	}
	if err := n.keys.Destroy(old); err != nil {
		return nil, err
	}
	r := &fsmpb.RecordErasure{NodeId: n.cfg.NodeID, Files: append(removed, "fsm.db: rewritten under the new key", "raft.db: log compacted, stable values resealed")}
	for _, id := range old {
		r.Keys = append(r.Keys, fmt.Sprintf("data key %d", id))
	}
	n.log.Info("data erased after the authorized destruction", "keys", r.Keys, "files", r.Files)
	return r, nil
}

// compactRaft snapshots now with no trailing logs, so that raft deletes its whole log up to
// the snapshot, and removes every older snapshot. The close and the erasure use it.
func (n *Node) compactRaft() ([]string, error) {
	rc := n.raft.ReloadableConfig()
	keep := rc.TrailingLogs
	rc.TrailingLogs = 0
	if err := n.raft.ReloadConfig(rc); err != nil {
		return nil, err
	}
	defer func() {
		rc.TrailingLogs = keep
		_ = n.raft.ReloadConfig(rc)
	}()
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, fmt.Errorf("snapshot to compact the log: %w", err)
	}
	metas, err := n.stores.snaps.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for i, m := range metas {
		if i == 0 { // newest first: the one just taken
			continue
		}
		// The file store keeps each snapshot in <base>/snapshots/<id> (raft.go roots it at
		// <data>/snapshots).
		dir := filepath.Join(n.cfg.DataDir, "snapshots", "snapshots", m.ID)
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		removed = append(removed, "snapshots/"+m.ID)
	}
	if left, err := n.stores.snaps.List(); err != nil || len(left) > 1 {
		return nil, fmt.Errorf("%d snapshots left after removing the older ones (%v)", len(left), err)
	}
	return removed, nil
}

// removeSetAside deletes the data folders a restore set aside beside this node's (each holds
// a keyring of its own under the same KEK, which the key destruction does not reach).
func (n *Node) removeSetAside() ([]string, error) {
	dir := filepath.Clean(n.cfg.DataDir)
	matches, err := filepath.Glob(dir + ".before-restore-*")
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return nil, err
		}
		removed = append(removed, filepath.Base(m))
	}
	return removed, nil
}

// checkReadableWithout opens every log entry raft still keeps and raft's stable values with
// a keyring that lacks the keys about to be destroyed.
func (n *Node) checkReadableWithout(ids []uint32) error {
	view, err := n.keys.Without(ids)
	if err != nil {
		return err
	}
	logs := storage.NewLogStore(n.stores.bolt, view)
	first, err := logs.FirstIndex()
	if err != nil {
		return err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return err
	}
	for i := first; i != 0 && i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil && !errors.Is(err, raft.ErrLogNotFound) {
			return fmt.Errorf("raft log entry %d is still sealed under a key to destroy (entries %d to %d kept): %w", i, first, last, err)
		}
	}
	stable := storage.NewStableStore(n.stores.bolt, view)
	for _, k := range raftStableKeys {
		if _, err := stable.Get(k); err != nil && !strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("raft stable value %s: %w", k, err)
		}
	}
	return nil
}

func (n *Node) proposeErasure(r *fsmpb.RecordErasure) {
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_RECORD_ERASURE, r)
	if err != nil {
		n.log.Error("build erasure report", "err", err)
		return
	}
	cmd.Actor = n.selfActor()
	ctx, cancel := context.WithTimeout(n.ctx, applyTimeout)
	defer cancel()
	resp, _, err := n.Propose(ctx, cmd)
	if err == nil {
		err = fsm.ResponseError(resp)
	}
	if err != nil {
		n.log.Warn("erasure report not recorded; the node erases again and retries", "err", err)
	}
}
