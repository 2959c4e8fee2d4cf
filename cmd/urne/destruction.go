package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/urne-vote/urne/archive"
	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Files `urne destruction status --out DIR` writes once the destruction is complete.
const (
	certificateFile = "destruction-certificate.json"
	signatureFile   = "destruction-certificate.sig"
)

func (a *app) destructionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destruction",
		Short: "Destroy an election's data once its retention period is over, with a signed certificate",
		Long: "The processor (operator) requests, the controller (organizer) authorizes: two recorded\n" +
			"steps by two principals, refused before the retention date (two years after the vote by\n" +
			"default, or the election's deletion date). Every node then destroys its data keys and\n" +
			"rewrites what is kept; the operator erases the managed backups; the cluster signs the\n" +
			"certificate (PV de destruction) with its receipt key. See docs/RETENTION.md.",
	}
	cmd.AddCommand(a.destructionStepCommand("request", roleOperator), a.destructionStepCommand("authorize", roleOrganizer),
		a.destructionEraseBackupsCommand(), a.destructionStatusCommand())
	return cmd
}

func (a *app) destructionStepCommand(step, role string) *cobra.Command {
	var reason string
	short := "Ask for the destruction of the election's data (the processor, operator certificate)"
	if step == "authorize" {
		short = "Authorize the requested destruction (the controller, organizer certificate); the nodes then erase their data"
	}
	cmd, _ := clientCmd(step+" [--reason TEXT]", short, role, func(cmd *cobra.Command, c *client.Client) error {
		call := c.RequestDestruction
		if step == "authorize" {
			call = c.AuthorizeDestruction
		}
		st, err := call(cmd.Context(), reason)
		if err != nil {
			return err
		}
		return a.emitDestruction(st, "")
	})
	cmd.Flags().StringVar(&reason, "reason", "", "why, in a sentence (recorded)")
	return cmd
}

func (a *app) destructionEraseBackupsCommand() *cobra.Command {
	var dirs, files []string
	cmd, conn := clientCmd("erase-backups --backups DIR... [--file FILE...]",
		"After the authorization: delete the managed backups and archives and the backup key, and record it",
		roleOperator, nil)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := conn.dial()
		if err != nil {
			return err
		}
		defer closeClient(c)
		st, err := c.Destruction(cmd.Context())
		if err != nil {
			return err
		}
		rec := &fsmpb.Destruction{}
		if len(st.GetRecordJson()) > 0 {
			if err := protojson.Unmarshal(st.GetRecordJson(), rec); err != nil {
				return fmt.Errorf("the destruction record does not decode: %w", err)
			}
		}
		if rec.AuthorizedAtUnixNano == 0 {
			return errors.New("the destruction is not authorized: nothing erased")
		}
		keys, removed, err := eraseBackups(conn.cluster, dirs, files)
		if err != nil {
			return err
		}
		st, err = c.RecordBackupErasure(cmd.Context(), keys, removed)
		if err != nil {
			return fmt.Errorf("backups erased (%s) but not recorded: %w", strings.Join(removed, ", "), err)
		}
		return a.emitDestruction(st, "")
	}
	cmd.Flags().StringSliceVar(&dirs, "backups", nil, "folders of scheduled backups (every *"+archiveSuffix+" in them is deleted)")
	cmd.Flags().StringSliceVar(&files, "file", nil, "other backups or election archives to delete")
	return cmd
}

// eraseBackups deletes the backup archives and the cluster folder's backup key: without the
// key, any copy of an archive left elsewhere no longer opens.
func eraseBackups(clusterDir string, dirs, files []string) (keys, removed []string, err error) {
	for _, d := range dirs {
		matches, err := filepath.Glob(filepath.Join(d, "*"+archiveSuffix))
		if err != nil {
			return nil, nil, err
		}
		files = append(files, matches...)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, removed, err
		}
		removed = append(removed, filepath.Base(f))
	}
	if clusterDir != "" {
		path := cluster.BackupKeyPath(clusterDir)
		if err := os.Remove(path); err == nil {
			keys = append(keys, "backup key "+cluster.BackupKeyFile)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, removed, err
		}
	}
	return keys, removed, nil
}

func (a *app) destructionStatusCommand() *cobra.Command {
	var out string
	var wait time.Duration
	cmd, _ := clientCmd("status [--out DIR] [--wait DURATION]",
		"Show the destruction's record and, once complete, write the signed certificate", roleOperator, func(cmd *cobra.Command, c *client.Client) error {
			st, err := waitCertificate(cmd.Context(), c, wait)
			if err != nil {
				return err
			}
			if out != "" && len(st.GetCertificate()) > 0 {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				if err := writeNew(filepath.Join(out, certificateFile), st.Certificate, 0o644); err != nil {
					return err
				}
				if err := writeNew(filepath.Join(out, signatureFile), st.Signature, 0o644); err != nil {
					return err
				}
			}
			return a.emitDestruction(st, out)
		})
	cmd.Flags().StringVar(&out, "out", "", "folder for the certificate and its signature, once complete")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every node's erasure")
	return cmd
}

func waitCertificate(ctx context.Context, c *client.Client, wait time.Duration) (*urnepb.DestructionStatus, error) {
	deadline := time.Now().Add(wait)
	for {
		st, err := c.Destruction(ctx)
		if err != nil || len(st.GetCertificate()) > 0 || time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

type destructionView struct {
	Record      json.RawMessage `json:"record,omitempty"`
	Complete    bool            `json:"complete"`
	Certificate string          `json:"certificate_file,omitempty"`
}

func (a *app) emitDestruction(st *urnepb.DestructionStatus, out string) error {
	v := destructionView{Complete: len(st.GetCertificate()) > 0}
	if len(st.GetRecordJson()) > 0 {
		v.Record = st.GetRecordJson()
	}
	if v.Complete && out != "" {
		v.Certificate = filepath.Join(out, certificateFile)
	}
	return a.emit(v, func(w io.Writer) {
		if len(v.Record) == 0 {
			fprintf(w, "no destruction was requested\n")
			return
		}
		if v.Complete {
			fprintf(w, "%s\n", st.GetCertificate())
			if v.Certificate != "" {
				fprintf(w, "certificate written to %s (signature %s)\n", v.Certificate, filepath.Join(out, signatureFile))
			}
			return
		}
		fprintf(w, "%s\nnot complete: the certificate is signed once every node and the backups reported their erasure\n", v.Record)
	})
}

// verifyDestructionCommand is `urne verify destruction`.
func (a *app) verifyDestructionCommand() *cobra.Command {
	var certFile, sigFile, keyFile string
	cmd := &cobra.Command{
		Use:   "destruction --certificate FILE --sig FILE --receipt-key FILE",
		Short: "Check a destruction certificate's signature with the cluster's receipt public key, and its content",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cert, err := readBounded(certFile, maxInputFile)
			if err != nil {
				return err
			}
			sig, err := readBounded(sigFile, maxInputFile)
			if err != nil {
				return err
			}
			pem, err := readBounded(keyFile, maxInputFile)
			if err != nil {
				return err
			}
			pub, err := ballot.ParseSigningPublicKeyPEM(pem)
			if err != nil {
				return err
			}
			c, err := archive.VerifyCertificate(pub, cert, sig)
			if err != nil {
				return err
			}
			return a.emit(c, func(w io.Writer) {
				fprintf(w, "destruction certificate of election %s verified\n", c.ElectionID)
				fprintf(w, "  requested by %s at %s, authorized by %s at %s (due %s)\n", c.RequestedBy,
					c.RequestedAt.Format(time.RFC3339), c.AuthorizedBy, c.AuthorizedAt.Format(time.RFC3339), c.DueAt.Format(time.RFC3339))
				for _, d := range c.Destroyed {
					fprintf(w, "  destroyed: %s\n", d)
				}
				for _, k := range c.Kept {
					fprintf(w, "  kept: %s\n", k)
				}
				for _, n := range c.Nodes {
					fprintf(w, "  %s erased at %s: %s; %s\n", n.NodeID, n.ErasedAt.Format(time.RFC3339), strings.Join(n.Keys, ", "), strings.Join(n.Files, ", "))
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&certFile, "certificate", "", "the certificate ("+certificateFile+")")
	fl.StringVar(&sigFile, "sig", "", "its signature ("+signatureFile+")")
	fl.StringVar(&keyFile, "receipt-key", "", "the cluster's receipt public key ("+cluster.ReceiptPublicKeyFile+" in the cluster folder)")
	for _, n := range []string{"certificate", "sig", "receipt-key"} {
		must(cmd.MarkFlagRequired(n))
	}
	return cmd
}
