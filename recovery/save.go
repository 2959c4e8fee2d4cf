package recovery

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client"
)

// SavedBackup says what SaveBackup wrote.
type SavedBackup struct {
	Path    string
	Header  backup.Header
	Summary backup.Summary
	Bytes   int64
	Seconds float64
}

// SaveBackup streams the state from the leader into an archive at path, sealed with secret. It
// writes a temporary file beside path, syncs it and renames it only once the archive is
// complete, so path is never a partial archive; it refuses to replace an existing file.
// watch, if set, is called once the leader has named the index, and the function it returns
// when the stream ends (to draw progress from the stream's counters).
func SaveBackup(ctx context.Context, c *client.Client, path string, secret *backup.Secret, watch func(*client.BackupStream) func()) (*SavedBackup, error) {
	start := time.Now()
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists: refusing to replace an archive", path)
	}
	stream, err := c.Backup(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	if watch != nil {
		defer watch(stream)()
	}
	info := stream.Info()
	h := backup.Header{ElectionID: info.GetElectionId(), Index: info.GetIndex(), Term: info.GetTerm(),
		TakenAt: time.Unix(0, info.GetTakenAtUnixNano()).UTC(), NodeID: info.GetNodeId(), NodeVersion: info.GetNodeVersion()}
	s, err := writeArchive(path, stream, secret, h)
	if err != nil {
		return nil, err
	}
	s.Seconds = time.Since(start).Seconds()
	return s, nil
}

func writeArchive(path string, src *client.BackupStream, secret *backup.Secret, h backup.Header) (*SavedBackup, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	bw := bufio.NewWriterSize(tmp, 1<<20)
	h, sum, err := backup.Save(bw, src, secret, h)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("backup not saved: %w", err)
	}
	info, err := os.Stat(tmp.Name())
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &SavedBackup{Path: path, Header: h, Summary: sum, Bytes: info.Size()}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
