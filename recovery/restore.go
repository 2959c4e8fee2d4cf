// Package recovery owns the operations that rebuild a cluster from what survives: restoring a
// backup archive into a cluster folder, and promoting the surviving datacenter of a 2+2 layout.
package recovery

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
)

// Sentinel errors of this package.
var (
	// ErrRunning: a node of the target cluster runs; its data cannot be replaced under it.
	ErrRunning = errors.New("a node of the cluster is running")
	// ErrExists: the target holds data that the operation would replace.
	ErrExists = errors.New("existing data would be replaced")
	// ErrUnsafe: the operation cannot prove that no acknowledged write would be lost.
	ErrUnsafe = errors.New("cannot prove that no acknowledged write is lost")
)

// RestoreRecord is written as restore.json in a restored cluster folder: where it came from.
const RestoreRecord = "restore.json"

// RestoreOptions say which archive to restore and where.
type RestoreOptions struct {
	Archive string
	Secret  *backup.Secret
	// Into an existing cluster folder (its keys and certificates are kept) ...
	Cluster string
	// Force lets a restore into Cluster replace the data of nodes that have some.
	Force bool
	// ... or into a new folder made like `urne cluster init` would.
	Out      string
	Topology string
	Host     string
	BasePort int
	Profile  node.Profile
	// Progress, if set, is told how many archive bytes were read, of how many.
	Progress func(read, total int64)
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	Dir          string         `json:"dir"`
	Archive      string         `json:"archive"`
	ArchiveBytes int64          `json:"archive_bytes"`
	Header       backup.Header  `json:"header"`
	Summary      backup.Summary `json:"summary"`
	Nodes        []string       `json:"nodes"`
	// MovedAside maps node ids to the folder their previous data was moved to.
	MovedAside map[string]string `json:"moved_aside,omitempty"`
	Seconds    float64           `json:"seconds"`
	RestoredAt time.Time         `json:"restored_at"`
}

// RestoreNew builds a new cluster folder at o.Out for the archive's election, whose nodes start
// from the archive's state. It is assembled beside o.Out and renamed into place only once every
// byte of the archive has been checked: a wrong key, a truncated file or a flipped byte leaves
// nothing behind.
func RestoreNew(o RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	if err := requireAbsentOrEmpty(o.Out); err != nil {
		return nil, err
	}
	ar, err := openArchive(o)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	h := ar.reader.Header()
	parent := filepath.Dir(filepath.Clean(o.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(parent, ".urne-restore-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	dir := filepath.Join(staging, "cluster")
	file, err := cluster.Init(cluster.Options{ElectionID: h.ElectionID, Topology: o.Topology, Out: dir,
		Host: o.Host, BasePort: o.BasePort, Profile: o.Profile})
	if err != nil {
		return nil, fmt.Errorf("new cluster folder: %w", err)
	}
	targets, err := nodeTargets(dir, file, "")
	if err != nil {
		return nil, err
	}
	res, err := seedAll(ar, targets)
	if err != nil {
		return nil, err
	}
	res.Archive, res.Dir = o.Archive, o.Out
	if err := finishNew(dir, o.Out, res, start); err != nil {
		return nil, err
	}
	return res, nil
}

func finishNew(staged, out string, res *RestoreResult, start time.Time) error {
	res.RestoredAt, res.Seconds = time.Now().UTC(), time.Since(start).Seconds()
	if err := writeRecord(staged, res); err != nil {
		return err
	}
	// os.Rename does not replace a folder, even an empty one.
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(staged, out); err != nil {
		return fmt.Errorf("move the restored cluster into %s: %w", out, err)
	}
	return nil
}

// RestoreInto replaces the data of every node of the cluster folder o.Cluster with the
// archive's state, keeping the folder's keys and certificates. It refuses when a node runs
// (its state database is locked), and, without o.Force, when a node has data. The new data is
// built beside the old and swapped in only once the whole archive has been checked; old data is
// moved aside, never deleted.
func RestoreInto(o RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	file, err := client.ReadClusterFile(filepath.Join(o.Cluster, client.ClusterFileName))
	if err != nil {
		return nil, err
	}
	targets, err := nodeTargets(o.Cluster, file, ".restoring")
	if err != nil {
		return nil, err
	}
	if err := checkReplaceable(targets, o.Force); err != nil {
		return nil, err
	}
	ar, err := openArchive(o)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	if h := ar.reader.Header(); h.ElectionID != file.ElectionID {
		return nil, fmt.Errorf("the archive is of election %q, the cluster folder %s runs %q", h.ElectionID, o.Cluster, file.ElectionID)
	}
	res, err := seedAll(ar, targets)
	if err != nil {
		return nil, err
	}
	res.Archive, res.Dir = o.Archive, o.Cluster
	if res.MovedAside, err = swapIn(targets, start); err != nil {
		return nil, err
	}
	res.RestoredAt, res.Seconds = time.Now().UTC(), time.Since(start).Seconds()
	return res, writeRecord(o.Cluster, res)
}

// target is one node to seed: its configuration with DataDir pointing at the folder to fill,
// and the data directory it will finally use.
type target struct {
	cfg   node.Config
	final string
}

func nodeTargets(dir string, file *client.ClusterFile, suffix string) ([]target, error) {
	var out []target
	for _, n := range file.Nodes {
		cfg, err := node.LoadConfig(filepath.Join(dir, filepath.FromSlash(n.Config)))
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		t := target{cfg: cfg, final: cfg.DataDir}
		t.cfg.DataDir += suffix
		out = append(out, t)
	}
	return out, nil
}

// checkReplaceable refuses running nodes always, and nodes with data unless forced.
func checkReplaceable(targets []target, force bool) error {
	for _, t := range targets {
		if locked(filepath.Join(t.final, "fsm.db")) {
			return fmt.Errorf("%w: node %s holds the lock of %s; stop it first", ErrRunning, t.cfg.NodeID, t.final)
		}
		if err := requireAbsentOrEmpty(t.final); err != nil && !force {
			return fmt.Errorf("%w: node %s has data in %s (use --force to move it aside and restore)", ErrExists, t.cfg.NodeID, t.final)
		}
		if err := os.RemoveAll(t.cfg.DataDir); err != nil {
			return err
		}
	}
	return nil
}

// locked reports whether a process holds the bbolt lock of path: a node is running on it.
func locked(path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		return errors.Is(err, berrors.ErrTimeout)
	}
	db.Close()
	return false
}

// archive is an open archive file being read.
type archive struct {
	f      *os.File
	reader *backup.Reader
	size   int64
}

func (a *archive) Close() error { return a.f.Close() }

func openArchive(o RestoreOptions) (*archive, error) {
	f, err := os.Open(o.Archive)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if o.Progress != nil {
		r = &progressReader{r: r, total: info.Size(), fn: o.Progress}
	}
	br, err := backup.NewReader(r, o.Secret)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", o.Archive, err)
	}
	return &archive{f: f, reader: br, size: info.Size()}, nil
}

// seedAll streams the archive once into every node's seed and commits them only when the
// archive proved whole and valid.
func seedAll(ar *archive, targets []target) (*RestoreResult, error) {
	h := ar.reader.Header()
	var seeds []*node.Seed
	abort := func() {
		for _, s := range seeds {
			s.Abort()
		}
	}
	writers := make([]io.Writer, 0, len(targets))
	for _, t := range targets {
		s, err := node.SeedDataDir(t.cfg, h.Index)
		if err != nil {
			abort()
			return nil, err
		}
		seeds = append(seeds, s)
		writers = append(writers, s)
	}
	if _, err := backup.Extract(io.MultiWriter(writers...), ar.reader); err != nil {
		abort()
		return nil, fmt.Errorf("%w (nothing was restored)", err)
	}
	res := &RestoreResult{Header: h, Summary: ar.reader.Summary(), ArchiveBytes: ar.size}
	for i, s := range seeds {
		if err := s.Commit(); err != nil {
			abort()
			return nil, err
		}
		res.Nodes = append(res.Nodes, targets[i].cfg.NodeID)
	}
	return res, nil
}

// swapIn moves each node's old data aside and the restored data into place.
func swapIn(targets []target, at time.Time) (map[string]string, error) {
	moved := map[string]string{}
	stamp := at.UTC().Format("20060102T150405Z")
	for _, t := range targets {
		if requireAbsentOrEmpty(t.final) != nil {
			aside := t.final + ".before-restore-" + stamp
			if err := os.Rename(t.final, aside); err != nil {
				return moved, fmt.Errorf("node %s: move its old data aside: %w", t.cfg.NodeID, err)
			}
			moved[t.cfg.NodeID] = aside
		} else if err := os.RemoveAll(t.final); err != nil {
			return moved, err
		}
		if err := os.Rename(t.cfg.DataDir, t.final); err != nil {
			return moved, fmt.Errorf("node %s: move the restored data into place: %w", t.cfg.NodeID, err)
		}
	}
	return moved, nil
}

func writeRecord(dir string, res *RestoreResult) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, RestoreRecord), append(b, '\n'), 0o644)
}

// requireAbsentOrEmpty refuses a folder that holds anything.
func requireAbsentOrEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s is not empty", ErrExists, dir)
	}
	return nil
}

// progressReader reports how much of a file was read.
type progressReader struct {
	r     io.Reader
	read  int64
	total int64
	fn    func(read, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	p.fn(p.read, p.total)
	return n, err
}
