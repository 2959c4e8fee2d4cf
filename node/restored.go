package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// restoreMark is the file a seeded data directory holds until its node has recorded the
// restore in the register: the index the state was restored at, nothing else.
const restoreMark = "restored"

func writeRestoreMark(dir string, index uint64) error {
	if err := os.WriteFile(filepath.Join(dir, restoreMark), []byte(strconv.FormatUint(index, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("mark the seeded data dir: %w", err)
	}
	return nil
}

// recordRestore records that this node's state was restored from a backup, then drops the
// mark; it runs before each scheduled integrity check until it succeeds. Waiting for the
// first check (not proposing at start) lets a restore drill compare the restored state with
// the archive's before anything is appended. The first node of the bootstrap list also has
// the bureau and the organizers told (a change during a sealed election); the others only
// record theirs, so that a restored cluster sends one notice, not one per node.
func (n *Node) recordRestore(ctx context.Context) {
	path := filepath.Join(n.cfg.DataDir, restoreMark)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		n.log.Warn("cannot read the restore mark", "err", err)
		return
	}
	ev := &fsmpb.RecordEvent{Action: "restore", Object: "node " + n.cfg.NodeID, Outcome: "ok",
		Detail: fmt.Sprintf("state restored from a backup at index %s", strings.TrimSpace(string(b)))}
	if n.firstOfBootstrap() {
		ev.Notice = fsmpb.Notice_NOTICE_SEALED_CHANGE
	}
	if _, _, err := n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_RECORD_EVENT, ev); err != nil {
		n.log.Warn("recording the restore failed; retrying at the next check", "err", err)
		return
	}
	if err := os.Remove(path); err != nil {
		n.log.Warn("cannot drop the restore mark", "err", err)
	}
}

func (n *Node) firstOfBootstrap() bool {
	ids := make([]string, 0, len(n.cfg.Bootstrap))
	for _, p := range n.cfg.Bootstrap {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return len(ids) > 0 && ids[0] == n.cfg.NodeID
}

// configMark keeps the digest of the configuration this node last recorded.
const configMark = "config.sha256"

// recordConfiguration records the node's configuration in the register when it differs from
// the one it recorded last (or on its first start), before each scheduled check until it
// succeeds. A change (not a first start) has the bureau and the organizers told, as any
// change during a sealed election. Only the digest is kept: the register names the change,
// the operator's configuration management holds the file.
func (n *Node) recordConfiguration(ctx context.Context) {
	b, err := json.Marshal(n.cfg)
	if err != nil {
		n.log.Warn("cannot encode the configuration", "err", err)
		return
	}
	sum := sha256.Sum256(b)
	now := hex.EncodeToString(sum[:])
	path := filepath.Join(n.cfg.DataDir, configMark)
	last, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		n.log.Warn("cannot read the configuration mark", "err", err)
		return
	}
	before := strings.TrimSpace(string(last))
	if before == now {
		return
	}
	ev := &fsmpb.RecordEvent{Action: "first configuration", Object: "node " + n.cfg.NodeID, Outcome: "ok",
		Detail: "configuration sha256 " + now}
	if before != "" {
		ev.Action, ev.Detail = "change configuration", fmt.Sprintf("configuration sha256 %s, was %s", now, before)
		ev.Notice = fsmpb.Notice_NOTICE_SEALED_CHANGE
	}
	if _, _, err := n.proposeOwn(ctx, fsmpb.CommandType_COMMAND_RECORD_EVENT, ev); err != nil {
		n.log.Warn("recording the configuration failed; retrying at the next check", "err", err)
		return
	}
	if err := os.WriteFile(path, []byte(now+"\n"), 0o600); err != nil {
		n.log.Warn("cannot write the configuration mark", "err", err)
	}
}
