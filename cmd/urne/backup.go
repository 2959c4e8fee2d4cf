package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/recovery"
)

// Environment variable holding a backup passphrase when --passphrase-env is not given.
const defaultPassphraseEnv = "URNE_BACKUP_PASSPHRASE"

func (a *app) backupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Save, verify, restore and schedule encrypted backups of the election state",
		Long: "A backup is the state machine of the election at one raft index, streamed from the leader\n" +
			"while voting goes on and sealed with AES-256-GCM under the cluster's backup key\n" +
			"(DIR/" + cluster.BackupKeyFile + ", written by `urne cluster init`) or a passphrase (argon2id).",
	}
	cmd.AddCommand(a.backupSaveCommand(), a.backupVerifyCommand(), a.backupRestoreCommand(), a.backupScheduleCommand())
	return cmd
}

// secretFlags choose the backup key: a key file, a passphrase file, a passphrase in the
// environment, or the cluster folder's key.
type secretFlags struct {
	keyFile, passFile, passEnv string
}

func addSecretFlags(cmd *cobra.Command) *secretFlags {
	f := &secretFlags{}
	fl := cmd.Flags()
	fl.StringVar(&f.keyFile, "key-file", "", "backup key file (default: the cluster folder's "+cluster.BackupKeyFile+")")
	fl.StringVar(&f.passFile, "passphrase-file", "", "file holding a passphrase (argon2id), instead of a key file")
	fl.StringVar(&f.passEnv, "passphrase-env", "", "environment variable holding a passphrase, e.g. "+defaultPassphraseEnv)
	cmd.MarkFlagsMutuallyExclusive("key-file", "passphrase-file", "passphrase-env")
	return f
}

// secret loads the chosen secret; clusterDir supplies the default key file.
func (f *secretFlags) secret(clusterDir string) (*backup.Secret, error) {
	switch {
	case f.keyFile != "":
		return backup.LoadKeyFile(f.keyFile)
	case f.passFile != "":
		p, err := os.ReadFile(f.passFile)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		return backup.Passphrase(p, backup.DefaultKDF)
	case f.passEnv != "":
		p, ok := os.LookupEnv(f.passEnv)
		if !ok {
			return nil, fmt.Errorf("the environment variable %s that should hold the passphrase is not set", f.passEnv)
		}
		return backup.Passphrase([]byte(p), backup.DefaultKDF)
	case clusterDir != "":
		return backup.LoadKeyFile(cluster.BackupKeyPath(clusterDir))
	}
	return nil, errors.New("no backup key: give --key-file, --passphrase-file or --passphrase-env (or --cluster DIR for its key)")
}

// backupView is the JSON of a saved or verified archive.
type backupView struct {
	File         string    `json:"file"`
	Bytes        int64     `json:"bytes"`
	Format       int       `json:"format"`
	ElectionID   string    `json:"election_id"`
	Index        uint64    `json:"index"`
	Term         uint64    `json:"term"`
	TakenAt      time.Time `json:"taken_at"`
	Node         string    `json:"node"`
	Key          string    `json:"key"`
	StateBytes   uint64    `json:"state_bytes,omitempty"`
	Records      uint64    `json:"records,omitempty"`
	Digest       string    `json:"digest,omitempty"`
	Voters       uint64    `json:"voters"`
	Emargements  uint64    `json:"emargements"`
	Ballots      uint64    `json:"ballots"`
	Seconds      float64   `json:"seconds,omitempty"`
	Verified     string    `json:"verified,omitempty"`
	ChecksumOnly bool      `json:"checksum_only,omitempty"`
}

func viewBackup(file string, size int64, h backup.Header, s backup.Summary) backupView {
	key := "passphrase"
	if h.Key.Kind == backup.KindKeyFile {
		key = "key " + h.Key.ID
	}
	return backupView{File: file, Bytes: size, Format: h.Format, ElectionID: h.ElectionID, Index: h.Index, Term: h.Term,
		TakenAt: h.TakenAt, Node: h.NodeID, Key: key, StateBytes: s.Size, Records: s.Records,
		Digest: hex.EncodeToString(s.Digest), Voters: s.Voters, Emargements: s.Emargements, Ballots: s.Ballots}
}

func printBackup(w io.Writer, v backupView, verb string) {
	fprintf(w, "%s %s (%s)\n", verb, v.File, humanBytes(uint64(v.Bytes)))
	fprintf(w, "  election %s, index %d, term %d, taken %s on %s\n", v.ElectionID, v.Index, v.Term,
		v.TakenAt.UTC().Format(time.RFC3339), v.Node)
	fprintf(w, "  sealed with %s, format %d\n", v.Key, v.Format)
	if v.ChecksumOnly {
		fprintf(w, "  framing and checksum only (no key given): contents not decrypted\n")
		return
	}
	fprintf(w, "  state %s in %d records; %d voters, %d émargements, %d ballots\n", humanBytes(v.StateBytes), v.Records, v.Voters, v.Emargements, v.Ballots)
	fprintf(w, "  state digest %s\n", v.Digest)
	if v.Seconds > 0 {
		fprintf(w, "  %.1fs\n", v.Seconds)
	}
}

func (a *app) backupSaveCommand() *cobra.Command {
	var out string
	var conn *connFlags
	var sf *secretFlags
	cmd := &cobra.Command{
		Use:   "save --cluster DIR --out FILE",
		Short: "Stream the state at one index from the leader into an encrypted archive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, err := sf.secret(conn.cluster)
			if err != nil {
				return err
			}
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			v, err := a.saveBackup(cmd.Context(), c, t, secret, out)
			if err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { printBackup(w, v, "saved") })
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "archive file to write (refused if it exists)")
	must(cmd.MarkFlagRequired("out"))
	conn = addConnFlags(cmd, roleOperator)
	sf = addSecretFlags(cmd)
	return cmd
}

// saveBackup streams a backup into out (never replacing a file), drawing progress on a terminal.
func (a *app) saveBackup(ctx context.Context, c *client.Client, t *clusterTarget, secret *backup.Secret, out string) (backupView, error) {
	s, err := recovery.SaveBackup(ctx, c, out, secret, func(stream *client.BackupStream) func() {
		info := stream.Info()
		return a.ticker(200*time.Millisecond, func() {
			a.progress("backup at index %d from %s: %s received", info.GetIndex(), info.GetNodeId(), humanBytes(stream.Received()))
		})
	})
	if err != nil {
		return backupView{}, err
	}
	if t.file != nil && s.Header.ElectionID != t.file.ElectionID {
		_ = os.Remove(out)
		return backupView{}, fmt.Errorf("the leader runs election %q, but the cluster folder is for %q", s.Header.ElectionID, t.file.ElectionID)
	}
	v := viewBackup(out, s.Bytes, s.Header, s.Summary)
	v.Seconds = s.Seconds
	return v, nil
}

func (a *app) backupVerifyCommand() *cobra.Command {
	var clusterDir string
	var checksumOnly bool
	var sf *secretFlags
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an archive without restoring it: key, framing, every chunk, checksum, state trailer",
		Long: "Read the whole archive: its header, every sealed chunk (authenticated with the key), the\n" +
			"sealed summary, the file checksum, and the state snapshot inside (its own trailer, and a\n" +
			"digest and counts equal to those the archive recorded). --checksum-only needs no key and\n" +
			"checks the framing and the checksum alone. Exits non-zero on any problem.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.verifyArchive(args[0], sf, clusterDir, checksumOnly)
			if err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { printBackup(w, v, "verified") })
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster", "", "cluster folder whose backup key opens the archive")
	cmd.Flags().BoolVar(&checksumOnly, "checksum-only", false, "check framing and checksum without a key")
	sf = addSecretFlags(cmd)
	return cmd
}

func (a *app) verifyArchive(path string, sf *secretFlags, clusterDir string, checksumOnly bool) (backupView, error) {
	f, err := os.Open(path)
	if err != nil {
		return backupView{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return backupView{}, err
	}
	r := a.fileProgress(bufio.NewReaderSize(f, 1<<20), info.Size(), "verifying")
	defer a.progressDone()
	if checksumOnly {
		fr, err := backup.CheckFraming(r)
		if err != nil {
			return backupView{}, fmt.Errorf("%s: %w", path, err)
		}
		v := viewBackup(path, fr.Bytes, fr.Header, backup.Summary{})
		v.ChecksumOnly, v.Verified = true, "framing and checksum"
		return v, nil
	}
	secret, err := sf.secret(clusterDir)
	if err != nil {
		return backupView{}, err
	}
	res, err := backup.Verify(r, secret)
	if err != nil {
		return backupView{}, fmt.Errorf("%s: %w", path, err)
	}
	v := viewBackup(path, res.Bytes, res.Header, res.Summary)
	v.Verified = "key, framing, every chunk, summary, checksum, state trailer and digest"
	return v, nil
}

// fileProgress wraps r to draw how much of a file was read, on a terminal.
func (a *app) fileProgress(r io.Reader, total int64, verb string) io.Reader {
	if !a.progressOn {
		return r
	}
	last := time.Now()
	return &progressCounter{r: r, fn: func(n int64) {
		if time.Since(last) > 200*time.Millisecond || n == total {
			last = time.Now()
			a.progress("%s: %s of %s", verb, humanBytes(uint64(n)), humanBytes(uint64(total)))
		}
	}}
}

type progressCounter struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressCounter) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.fn(p.n)
	return n, err
}

// humanBytes renders a size in B, KiB, MiB or GiB.
func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
