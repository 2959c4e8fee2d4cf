package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Roles of the lifecycle, beyond those every cluster folder holds.
const (
	roleBureau   = "bureau"
	roleObserver = "observer"
)

// lifecycleCommands are the `election` subcommands of the legal path.
func (a *app) lifecycleCommands() []*cobra.Command {
	return []*cobra.Command{
		a.electionConfigureCommand(),
		a.electionKeyCommand(),
		a.electionStateCommand("seal", "Seal the election (bureau): configuration, lists, roll, key and build can no longer change",
			roleBureau, (*client.Client).SealElection),
		a.electionStateCommand("archive", "Archive a tallied election", roleBureau, (*client.Client).ArchiveElection),
		a.electionRecordTallyCommand(),
		a.electionIssueCommand(),
		a.electionEmargementCommand(),
	}
}

// clientCmd builds a command that dials the cluster with role's certificate and runs run.
func clientCmd(use, short, role string, run func(cmd *cobra.Command, c *client.Client) error) (*cobra.Command, *connFlags) {
	var conn *connFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			return run(cmd, c)
		},
	}
	conn = addConnFlags(cmd, role)
	return cmd, conn
}

func (a *app) emitElection(st *urnepb.ElectionState) error {
	v := viewElection(st)
	return a.emit(v, func(w io.Writer) { printElection(w, v) })
}

func (a *app) electionStateCommand(use, short, role string, call func(*client.Client, context.Context) (*urnepb.ElectionState, error)) *cobra.Command {
	cmd, _ := clientCmd(use, short, role, func(cmd *cobra.Command, c *client.Client) error {
		st, err := call(c, cmd.Context())
		if err != nil {
			return err
		}
		return a.emitElection(st)
	})
	return cmd
}

func (a *app) electionConfigureCommand() *cobra.Command {
	var path string
	cmd, _ := clientCmd("configure --file election.json", "Set the configuration, bureau, scrutins and candidate lists of a draft election",
		roleOrganizer, func(cmd *cobra.Command, c *client.Client) error {
			in, closeIn, err := openInput(path)
			if err != nil {
				return err
			}
			defer closeIn()
			f, err := parseElectionFile(in)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			st, err := applyElectionFile(cmd.Context(), c, f)
			if err != nil {
				return err
			}
			return a.emitElection(st)
		})
	cmd.Long = "Send an election description (JSON: organizer, controller, processor, opens_at, closes_at\n" +
		"(RFC 3339), session_timeout, code_validity, bureau, scrutins with their list_rule and lists).\n" +
		"Every part is idempotent: run it again after editing the file, until the election is sealed."
	cmd.Flags().StringVar(&path, "file", "", "election description; - reads standard input")
	must(cmd.MarkFlagRequired("file"))
	return cmd
}

func applyElectionFile(ctx context.Context, c *client.Client, f *electionFile) (*urnepb.ElectionState, error) {
	st, err := c.ConfigureElection(ctx, f.config())
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	scrutins, lists := f.scrutins()
	for _, s := range scrutins {
		if st, err = c.PutScrutin(ctx, s); err != nil {
			return nil, fmt.Errorf("scrutin %s: %w", s.ScrutinId, err)
		}
	}
	for _, l := range lists {
		if st, err = c.PutCandidateList(ctx, l); err != nil {
			return nil, fmt.Errorf("list %s of scrutin %s: %w", l.ListId, l.ScrutinId, err)
		}
	}
	return st, nil
}

func (a *app) electionKeyCommand() *cobra.Command {
	var keyFile, policyFile string
	cmd, _ := clientCmd("key --public-key FILE [--policy FILE]", "Record the election public key made by the key ceremony",
		roleBureau, func(cmd *cobra.Command, c *client.Client) error {
			pub, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			var policy []byte
			if policyFile != "" {
				if policy, err = os.ReadFile(policyFile); err != nil {
					return err
				}
			}
			st, err := c.SetElectionKey(cmd.Context(), pub, policy)
			if err != nil {
				return err
			}
			return a.emitElection(st)
		})
	cmd.Flags().StringVar(&keyFile, "public-key", "", "election public key file (PEM)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "access policy of the key fragments")
	must(cmd.MarkFlagRequired("public-key"))
	return cmd
}

func fileDigest(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

func (a *app) electionRecordTallyCommand() *cobra.Command {
	var results, minutes string
	cmd, _ := clientCmd("record-tally --results FILE --minutes FILE", "Record the digests of the tally's results and signed minutes (bureau)",
		roleBureau, func(cmd *cobra.Command, c *client.Client) error {
			r, err := fileDigest(results)
			if err != nil {
				return err
			}
			m, err := fileDigest(minutes)
			if err != nil {
				return err
			}
			st, err := c.RecordTally(cmd.Context(), r, m)
			if err != nil {
				return err
			}
			return a.emitElection(st)
		})
	cmd.Flags().StringVar(&results, "results", "", "results document of the tally")
	cmd.Flags().StringVar(&minutes, "minutes", "", "signed minutes (PV) of the tally")
	must(cmd.MarkFlagRequired("results"))
	must(cmd.MarkFlagRequired("minutes"))
	return cmd
}

func (a *app) electionIssueCommand() *cobra.Command {
	var voter string
	cmd, _ := clientCmd("issue-identifiers [--voter ID]", "Email a random login identifier to every voter without one (or a new one to a voter)",
		roleOrganizer, func(cmd *cobra.Command, c *client.Client) error {
			r, err := c.IssueIdentifiers(cmd.Context(), voter)
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) {
				fprintf(w, "%d identifiers issued (sent through the outbox); %d voters without one\n", r.Issued, r.Remaining)
			})
		})
	cmd.Flags().StringVar(&voter, "voter", "", "replace this voter's identifier")
	return cmd
}

// emargementView is one line of `election emargement`.
type emargementView struct {
	VoterID     string     `json:"voter_id"`
	Name        string     `json:"name"`
	DateOfBirth string     `json:"date_of_birth,omitempty"`
	Scrutin     string     `json:"scrutin,omitempty"`
	EmargedAt   *time.Time `json:"emarged_at"`
}

func (a *app) electionEmargementCommand() *cobra.Command {
	cmd, _ := clientCmd("emargement", "Export the émargement list (who voted in which scrutin, when) for the bureau",
		roleBureau, func(cmd *cobra.Command, c *client.Client) error {
			var rows []emargementView
			err := c.ExportEmargement(cmd.Context(), func(e *urnepb.EmargementEntry) error {
				rows = append(rows, emargementView{VoterID: e.VoterId, Name: e.Name, DateOfBirth: e.DateOfBirth,
					Scrutin: e.ScrutinId, EmargedAt: unixNano(e.EmargedAtUnixNano)})
				return nil
			})
			if err != nil {
				return err
			}
			return a.emit(rows, func(w io.Writer) {
				lines := make([]string, len(rows))
				for i, r := range rows {
					lines[i] = strings.Join([]string{r.VoterID, r.Name, r.Scrutin, r.EmargedAt.Format(time.RFC3339)}, "\t")
				}
				table(w, "VOTER\tNAME\tSCRUTIN\tEMARGED AT", lines)
			})
		})
	return cmd
}

// accountView is the JSON of `operator account` and `operator unlock`.
type accountView struct {
	VoterID       string     `json:"voter_id"`
	HasIdentifier bool       `json:"has_identifier"`
	Failures      uint32     `json:"failures"`
	Locked        bool       `json:"locked"`
	LockedAt      *time.Time `json:"locked_at,omitempty"`
}

func (a *app) emitAccount(st *urnepb.AccountStatus) error {
	v := accountView{VoterID: st.VoterId, HasIdentifier: st.HasIdentifier, Failures: st.Failures, Locked: st.Locked,
		LockedAt: unixNano(st.LockedAtUnixNano)}
	return a.emit(v, func(w io.Writer) {
		state := "unlocked"
		if v.Locked {
			state = "LOCKED since " + v.LockedAt.Format(time.RFC3339)
		}
		fprintf(w, "voter %s: %s, %d failed attempts, identifier issued: %v\n", v.VoterID, state, v.Failures, v.HasIdentifier)
	})
}

func (a *app) operatorAccountCommands() []*cobra.Command {
	var voter, reason string
	unlock, _ := operatorCmd("unlock --voter ID --reason TEXT", "Unlock a voter's account after checking who asks (recorded in the activity register)",
		func(ctx context.Context, c *client.Client, _ *clusterTarget) error {
			st, err := c.UnlockAccount(ctx, voter, reason)
			if err != nil {
				return err
			}
			return a.emitAccount(st)
		})
	unlock.Flags().StringVar(&voter, "voter", "", "voter id")
	unlock.Flags().StringVar(&reason, "reason", "", "why, as the activity register will say")
	must(unlock.MarkFlagRequired("voter"))
	must(unlock.MarkFlagRequired("reason"))
	var who string
	account, _ := operatorCmd("account --voter ID", "Show a voter's authentication state",
		func(ctx context.Context, c *client.Client, _ *clusterTarget) error {
			st, err := c.GetAccount(ctx, who)
			if err != nil {
				return err
			}
			return a.emitAccount(st)
		})
	account.Flags().StringVar(&who, "voter", "", "voter id")
	must(account.MarkFlagRequired("voter"))
	return []*cobra.Command{unlock, account}
}

func (a *app) clusterIssueClientCommand() *cobra.Command {
	var dir, role string
	cmd := &cobra.Command{
		Use:   "issue-client --dir DIR --role ROLE",
		Short: "Issue a client certificate for a role (bureau, observer, ...) with the folder's CA",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := issueClient(dir, role); err != nil {
				return err
			}
			v := map[string]string{"role": role, "certificate": filepath.Join(dir, client.ClientsDir, role+".crt")}
			return a.emit(v, func(w io.Writer) { fprintf(w, "wrote %s\n", v["certificate"]) })
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "cluster folder holding ca/ca.key")
	cmd.Flags().StringVar(&role, "role", "", "role the certificate names")
	must(cmd.MarkFlagRequired("dir"))
	must(cmd.MarkFlagRequired("role"))
	return cmd
}

func issueClient(dir, role string) error {
	if err := pki.ValidateName(role); err != nil {
		return err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, client.CAFile))
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca", "ca.key"))
	if err != nil {
		return fmt.Errorf("the CA key must be present to issue a certificate: %w", err)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return err
	}
	crt, key, err := ca.IssueClient(role)
	if err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(dir, client.ClientsDir, role+".crt"), crt, 0o644); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dir, client.ClientsDir, role+".key"), key, 0o600)
}
