package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/pki"
)

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Export and verify the activity register",
	}
	cmd.AddCommand(a.auditExportCommand(), a.auditVerifyCommand())
	return cmd
}

// exportSummary is the result of `audit export --file`.
type exportSummary struct {
	File     string `json:"file"`
	Node     string `json:"node"`
	Election string `json:"election"`
	Entries  uint64 `json:"entries"`
	Head     string `json:"head"`
}

func (a *app) auditExportCommand() *cobra.Command {
	var conn *connFlags
	var file string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the activity register",
		Long: "Export the activity register of the cluster.\n\n" +
			"With --file, the export (JSON lines: a header, then one entry per line, the form\n" +
			"`urne audit verify` reads) is written to the file and a summary is printed. Without\n" +
			"--file, the human-readable register is printed, or with -o json the JSON-lines export\n" +
			"itself (one JSON document per line).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			return a.exportRegister(cmd.Context(), c, file)
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	cmd.Flags().StringVar(&file, "file", "", "write the JSON-lines export to this file")
	return cmd
}

func (a *app) exportRegister(ctx context.Context, c *client.Client, file string) error {
	var buf bytes.Buffer
	sum, err := fetchRegister(ctx, c, &buf)
	if err != nil {
		return err
	}
	switch {
	case file != "":
		if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
			return fmt.Errorf("write export: %w", err)
		}
		sum.File = file
		return a.emit(sum, func(w io.Writer) {
			fprintf(w, "exported %d entries of election %s from node %s to %s\nhead %s\n", sum.Entries, sum.Election, sum.Node, file, sum.Head)
		})
	case a.jsonOutput():
		a.streaming()
		_, err := a.stdout.Write(buf.Bytes())
		return err
	default:
		r, err := audit.NewReader(&buf)
		if err != nil {
			return err
		}
		a.streaming()
		return audit.WriteText(a.stdout, r)
	}
}

// fetchRegister writes the export of the whole register to w.
func fetchRegister(ctx context.Context, c *client.Client, w io.Writer) (*exportSummary, error) {
	var ew *audit.Writer
	sum := &exportSummary{}
	err := c.RegisterEntries(ctx, 1, func(info client.RegisterInfo, raw []byte) error {
		if ew == nil {
			var err error
			sum.Node, sum.Election = info.NodeID, info.ElectionID
			ew, err = audit.NewWriter(w, audit.Header{Election: info.ElectionID, ExportedBy: info.NodeID,
				ExportedAt: time.Now().UTC().Format(time.RFC3339)})
			if err != nil {
				return err
			}
		}
		var e audit.Entry
		if err := e.UnmarshalBinary(raw); err != nil {
			return fmt.Errorf("entry %d from node %s: %w", sum.Entries+1, info.NodeID, err)
		}
		sum.Entries++
		sum.Head = e.Hash().String()
		return ew.Write(&e)
	})
	if err != nil {
		return nil, fmt.Errorf("export register: %w", err)
	}
	if ew == nil {
		return nil, errors.New("export register: the register is empty")
	}
	return sum, ew.Flush()
}

// verifyResult is the result of `audit verify`.
type verifyResult struct {
	OK                bool        `json:"ok"`
	Entries           uint64      `json:"entries,omitempty"`
	Head              string      `json:"head,omitempty"`
	Stamps            []stampView `json:"stamps,omitempty"`
	LastStampedEntry  uint64      `json:"last_stamped_entry,omitempty"`
	Unstamped         uint64      `json:"unstamped_entries,omitempty"`
	ErasedConnections uint64      `json:"erased_connections,omitempty"`
	BadEntry          uint64      `json:"bad_entry,omitempty"`
	Error             string      `json:"error,omitempty"`
	Authorities       []string    `json:"trusted_authorities"`
}

type stampView struct {
	Entry     uint64    `json:"entry"`
	Stamps    uint64    `json:"stamps_entry"`
	Authority string    `json:"authority"`
	Time      time.Time `json:"time"`
}

func (a *app) auditVerifyCommand() *cobra.Command {
	var file string
	var certs []string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify an exported activity register offline",
		Long: "Verify an export written by `urne audit export --file`, with no access to the cluster:\n" +
			"the chain of hashes from the first entry, the hash stated for each entry, and every\n" +
			"timestamp token against the authority certificates given. On failure the first bad\n" +
			"entry is named and the exit code is 2.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return a.verifyExport(file, certs)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "export to verify (required)")
	cmd.Flags().StringSliceVar(&certs, "tsa-cert", nil, "PEM certificate of a trusted timestamp authority (repeatable)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func (a *app) verifyExport(file string, certPaths []string) error {
	trusted, names, err := loadCertificates(certPaths)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, verr := audit.Verify(f, trusted)
	res := verifyResult{OK: verr == nil, Authorities: names}
	if verr != nil {
		res.Error = verr.Error()
		var bad *audit.BadEntryError
		if errors.As(verr, &bad) {
			res.BadEntry = bad.Seq
		}
	} else {
		fillVerifyResult(&res, rep)
	}
	if err := a.emit(res, func(w io.Writer) { printVerify(w, res) }); err != nil {
		return err
	}
	if verr != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("%s does not verify: %v", file, verr)}
	}
	return nil
}

func fillVerifyResult(res *verifyResult, rep *audit.Report) {
	res.Entries, res.Head = rep.Entries, rep.Head.String()
	res.LastStampedEntry, res.Unstamped, res.ErasedConnections = rep.LastStampedSeq(), rep.Unstamped, rep.ErasedConnections
	for _, s := range rep.Stamps {
		res.Stamps = append(res.Stamps, stampView{Entry: s.EntrySeq, Stamps: s.StampedSeq, Authority: s.Authority, Time: s.Time})
	}
}

func printVerify(w io.Writer, res verifyResult) {
	if !res.OK {
		fprintf(w, "FAILED: %s\n", res.Error)
		return
	}
	fprintf(w, "OK: %d entries, head %s\n", res.Entries, res.Head)
	for _, s := range res.Stamps {
		fprintf(w, "  entry %d: timestamp over entry %d by %s at %s\n", s.Entry, s.Stamps, s.Authority, s.Time.UTC().Format(time.RFC3339))
	}
	switch {
	case len(res.Stamps) == 0:
		fprintf(w, "no entry is covered by a trusted timestamp\n")
	case res.Unstamped > 0:
		fprintf(w, "%d entries after entry %d are not yet covered by a trusted timestamp\n", res.Unstamped, res.LastStampedEntry)
	}
	if res.ErasedConnections > 0 {
		fprintf(w, "%d entries had their connection details erased after retention\n", res.ErasedConnections)
	}
}

// loadCertificates reads PEM certificates, every certificate of every file.
func loadCertificates(paths []string) ([]*x509.Certificate, []string, error) {
	var certs []*x509.Certificate
	names := []string{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("timestamp authority certificate: %w", err)
		}
		c, err := pki.ParseCertificatePEM(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("timestamp authority certificate %s: %w", p, err)
		}
		certs = append(certs, c)
		names = append(names, c.Subject.String())
	}
	return certs, names, nil
}
