package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/archive"
	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/urnepb"
)

func (a *app) archiveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Seal an ended election into one encrypted archive, and check archives offline",
		Long: "The archive keeps everything the election leaves: configuration, roll and rectifications,\n" +
			"émargement, encrypted ballots, the activity register with its timestamp tokens, the\n" +
			"minutes and results of the tally, the build's digest, and a manifest of every member's\n" +
			"SHA-256. It uses the backup format's encryption and checksums (backup/DESIGN.md).",
	}
	cmd.AddCommand(a.archiveCreateCommand(), a.archiveVerifyCommand())
	return cmd
}

type archiveFlags struct {
	out, minutes, results string
	attach                []string
}

func (a *app) archiveCreateCommand() *cobra.Command {
	var f archiveFlags
	var conn *connFlags
	var sf *secretFlags
	cmd := &cobra.Command{
		Use:   "create --cluster DIR --out FILE [--minutes FILE --results FILE]",
		Short: "Seal the closed or tallied election into an archive, then mark it archived",
		Long: "Streams the state at one index from the leader (operator certificate) and seals it with\n" +
			"the backup key or a passphrase. The minutes and results must be the files whose digests\n" +
			"were recorded with the tally. Once the archive is written and synced, the election is\n" +
			"archived with the archive's digest (organizer certificate of the cluster folder).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.createArchive(cmd.Context(), conn, sf, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "archive file to write (refused if it exists)")
	fl.StringVar(&f.minutes, "minutes", "", "the signed minutes of the tally (the file recorded with record-tally)")
	fl.StringVar(&f.results, "results", "", "the results document of the tally")
	fl.StringSliceVar(&f.attach, "attach", nil, "other files of the tally to keep (pv.txt, fingerprints.txt, signatures, decrypted ballots)")
	must(cmd.MarkFlagRequired("out"))
	conn = addConnFlags(cmd, roleOperator)
	sf = addSecretFlags(cmd)
	return cmd
}

type archiveView struct {
	File      string            `json:"file"`
	Bytes     int64             `json:"bytes"`
	Digest    string            `json:"digest"`
	Manifest  *archive.Manifest `json:"manifest"`
	Archived  bool              `json:"archived,omitempty"`
	Verified  string            `json:"verified,omitempty"`
	Stamps    int               `json:"stamps_verified,omitempty"`
	Unstamped uint64            `json:"unstamped_entries,omitempty"`
}

func (f archiveFlags) files() []archive.File {
	var out []archive.File
	if f.minutes != "" {
		out = append(out, archive.File{Name: archive.MemberName(archive.TallyMinutesDir, filepath.Base(f.minutes)), What: "the signed minutes (PV)", Path: f.minutes, Role: archive.RoleMinutes})
	}
	if f.results != "" {
		out = append(out, archive.File{Name: archive.MemberName(archive.TallyResultsDir, filepath.Base(f.results)), What: "the results of the tally", Path: f.results, Role: archive.RoleResults})
	}
	for _, p := range f.attach {
		out = append(out, archive.File{Name: archive.MemberName(archive.TallyFilesDir, filepath.Base(p)), What: "a file of the tally", Path: p})
	}
	return out
}

func (a *app) createArchive(ctx context.Context, conn *connFlags, sf *secretFlags, f archiveFlags) error {
	secret, err := sf.secret(conn.cluster)
	if err != nil {
		return err
	}
	c, _, err := conn.dial()
	if err != nil {
		return err
	}
	defer closeClient(c)
	st, err := c.GetElection(ctx)
	if err != nil {
		return err
	}
	switch st.GetPhase() {
	case urnepb.ElectionPhase_PHASE_CLOSED, urnepb.ElectionPhase_PHASE_TALLIED, urnepb.ElectionPhase_PHASE_ARCHIVED:
	default:
		return fmt.Errorf("election %s is %s: an archive is made once the vote is closed", st.GetElectionId(), fsm.PhaseName(int32(st.GetPhase())))
	}
	if st.GetProfile() != fsm.ProfileTest && st.GetPhase() == urnepb.ElectionPhase_PHASE_CLOSED {
		return fmt.Errorf("election %s follows the %s profile: record the tally (urne election record-tally) before the archive", st.GetElectionId(), st.GetProfile())
	}
	stream, err := c.Backup(ctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	info := stream.Info()
	stop := a.ticker(200*time.Millisecond, func() {
		a.progress("archive at index %d from %s: %s received", info.GetIndex(), info.GetNodeId(), humanBytes(stream.Received()))
	})
	h := backup.Header{ElectionID: info.GetElectionId(), Index: info.GetIndex(), Term: info.GetTerm(),
		TakenAt: time.Unix(0, info.GetTakenAtUnixNano()).UTC(), NodeID: info.GetNodeId(), NodeVersion: info.GetNodeVersion()}
	created, err := archive.CreateFile(f.out, stream, secret, h, archive.Options{Files: f.files(), Creator: node.Version})
	stop()
	if err != nil {
		return err
	}
	v := archiveView{File: f.out, Digest: hex.EncodeToString(created.Digest), Manifest: created.Manifest}
	if fi, err := os.Stat(f.out); err == nil {
		v.Bytes = fi.Size()
	}
	if err := a.markArchived(ctx, conn, created.Digest); err != nil {
		return fmt.Errorf("the archive %s is written, but the election was not marked archived: %w", f.out, err)
	}
	v.Archived = true
	return a.emit(v, func(w io.Writer) { printArchive(w, v, "sealed") })
}

// markArchived records the archive's digest with ARCHIVE_ELECTION, as the organizer (or the
// role given to --endpoints, which must then be the organizer's or the bureau's).
func (a *app) markArchived(ctx context.Context, conn *connFlags, digest []byte) error {
	c, _, err := conn.dialAs(roleOrganizer)
	if err != nil {
		return err
	}
	defer closeClient(c)
	_, err = c.ArchiveElectionSealed(ctx, digest)
	return err
}

func printArchive(w io.Writer, v archiveView, verb string) {
	m := v.Manifest
	fprintf(w, "%s %s (%s)\n", verb, v.File, humanBytes(uint64(v.Bytes)))
	fprintf(w, "  election %s (%s, %s), %s at index %d, taken %s\n", m.ElectionID, m.Name, m.Profile, m.Phase, m.Index, m.TakenAt.Format(time.RFC3339))
	fprintf(w, "  %d voters, %d émargements, %d ballots; register of %d entries (%d timestamps)\n",
		m.Counts.Voters, m.Counts.Emargements, m.Counts.Ballots, m.Register.Entries, m.Register.Stamps)
	if m.Build != nil {
		fprintf(w, "  build %s %s\n", m.Build.SHA256, m.Build.Version)
	}
	for _, mem := range m.Members {
		fprintf(w, "  %-32s %10s  sha256 %s\n", mem.Name, humanBytes(mem.Bytes), mem.SHA256)
	}
	fprintf(w, "  archive digest (SHA-256 of the manifest) %s\n", v.Digest)
	if v.Archived {
		fprintf(w, "  the election is archived with this digest\n")
	}
	if v.Verified != "" {
		fprintf(w, "  verified: %s\n", v.Verified)
	}
}

func (a *app) archiveVerifyCommand() *cobra.Command {
	var clusterDir, extract string
	var certs []string
	var sf *secretFlags
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an archive offline: key, every chunk, checksums, manifest, register chain and timestamps",
		Long: "Reads the whole archive: the backup framing (key, every sealed chunk, summary, file\n" +
			"checksum), every member against its SHA-256 and the manifest, the minutes and results\n" +
			"against the digests recorded with the tally, and the activity register's chain and\n" +
			"timestamp tokens (give the authorities' certificates with --tsa-cert). --extract DIR\n" +
			"writes the members there, and removes them if the archive turns out damaged.",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			v, err := a.verifyElectionArchive(args[0], sf, clusterDir, certs, extract)
			if err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { printArchive(w, v, "verified") })
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster", "", "cluster folder whose backup key opens the archive")
	cmd.Flags().StringSliceVar(&certs, "tsa-cert", nil, "PEM certificate of a trusted timestamp authority (repeatable)")
	cmd.Flags().StringVar(&extract, "extract", "", "folder to write the members to (must not exist)")
	sf = addSecretFlags(cmd)
	return cmd
}

func (a *app) verifyElectionArchive(path string, sf *secretFlags, clusterDir string, certPaths []string, extract string) (archiveView, error) {
	secret, err := sf.secret(clusterDir)
	if err != nil {
		return archiveView{}, err
	}
	trusted, _, err := loadCertificates(certPaths)
	if err != nil {
		return archiveView{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return archiveView{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return archiveView{}, err
	}
	var sink archive.MemberFunc
	if extract != "" {
		if err := os.Mkdir(extract, 0o700); err != nil {
			return archiveView{}, fmt.Errorf("extract folder: %w", err)
		}
		sink = extractTo(extract)
	}
	r := a.fileProgress(bufio.NewReaderSize(f, 1<<20), fi.Size(), "verifying")
	res, err := archive.Verify(r, secret, trusted, sink)
	a.progressDone()
	if err != nil {
		if extract != "" {
			_ = os.RemoveAll(extract)
		}
		return archiveView{}, fmt.Errorf("%s: %w", path, err)
	}
	v := archiveView{File: path, Bytes: res.Bytes, Digest: hex.EncodeToString(res.Digest), Manifest: res.Manifest,
		Verified: "key, every chunk, checksums, every member against the manifest, tally digests, register chain"}
	if rep := res.Register; rep != nil {
		v.Stamps, v.Unstamped = len(rep.Stamps), rep.Unstamped
		v.Verified += fmt.Sprintf(" (%d entries, %d timestamps checked)", rep.Entries, len(rep.Stamps))
	}
	return v, nil
}

// extractTo writes each member under dir (member names never leave their folder).
func extractTo(dir string) archive.MemberFunc {
	return func(name string, r io.Reader) error {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, r)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}
}
