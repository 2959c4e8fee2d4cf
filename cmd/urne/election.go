package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/urnepb"
)

// maxBallotFile bounds what `election cast --ballot-file` reads; the cluster has its own limit.
const maxBallotFile = 16 << 20

func (a *app) electionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "election",
		Short: "Create, fill, open and close the election; cast and read",
	}
	cmd.AddCommand(
		a.electionCreateCommand(),
		a.electionImportCommand(),
		a.electionPrepareCommand(),
		a.electionTransitionCommand("open", "Open the election to casting"),
		a.electionTransitionCommand("close", "Close the election: no cast is accepted afterwards"),
		a.electionCountsCommand(),
		a.electionCastCommand(),
		a.electionHasVotedCommand(),
		a.electionFingerprintsCommand(),
	)
	cmd.AddCommand(a.lifecycleCommands()...)
	return cmd
}

// electionView is the JSON of an election state.
type electionView struct {
	ElectionID string     `json:"election_id"`
	Name       string     `json:"name"`
	Phase      string     `json:"phase"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	OpenedAt   *time.Time `json:"opened_at,omitempty"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
	Index      uint64     `json:"index"`
	Profile    string     `json:"profile,omitempty"`
	OpensAt    *time.Time `json:"opens_at,omitempty"`
	ClosesAt   *time.Time `json:"closes_at,omitempty"`
	Seal       string     `json:"seal,omitempty"`
	Build      string     `json:"build,omitempty"`
	ClosedBy   string     `json:"closed_by,omitempty"`
	BoxRoot    string     `json:"box_root,omitempty"`
}

func viewElection(s *urnepb.ElectionState) electionView {
	return electionView{
		ElectionID: s.GetElectionId(), Name: s.GetName(), Phase: phaseName(s.GetPhase()),
		CreatedAt: unixNano(s.GetCreatedAtUnixNano()), OpenedAt: unixNano(s.GetOpenedAtUnixNano()),
		ClosedAt: unixNano(s.GetClosedAtUnixNano()), Index: s.GetIndex(), Profile: s.GetProfile(),
		OpensAt: unixNano(s.GetConfig().GetOpensAtUnixNano()), ClosesAt: unixNano(s.GetConfig().GetClosesAtUnixNano()),
		Seal: hex.EncodeToString(s.GetSeal().GetDigest()), Build: hex.EncodeToString(s.GetSeal().GetBuildDigest()),
		ClosedBy: s.GetClosedBy(), BoxRoot: hex.EncodeToString(s.GetBoxRoot()),
	}
}

// phaseName is the lower-case name of a phase: none, draft, open, closed.
func phaseName(p urnepb.ElectionPhase) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PHASE_"))
}

func unixNano(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

func printElection(w io.Writer, v electionView) {
	fprintf(w, "election %s", v.ElectionID)
	if v.Name != "" {
		fprintf(w, " (%s)", v.Name)
	}
	fprintf(w, ": %s at index %d\n", v.Phase, v.Index)
	for _, t := range []struct {
		label string
		at    *time.Time
	}{{"created", v.CreatedAt}, {"window", v.OpensAt}, {"until", v.ClosesAt}, {"opened", v.OpenedAt}, {"closed", v.ClosedAt}} {
		if t.at != nil {
			fprintf(w, "  %-8s %s\n", t.label, t.at.Format(time.RFC3339Nano))
		}
	}
	for _, f := range [][2]string{{"profile", v.Profile}, {"seal", v.Seal}, {"build", v.Build}, {"closed by", v.ClosedBy}, {"box root", v.BoxRoot}} {
		if f[1] != "" {
			fprintf(w, "  %-9s %s\n", f[0], f[1])
		}
	}
}

func (a *app) electionCreateCommand() *cobra.Command {
	var conn *connFlags
	var id, name, profile string
	cmd := &cobra.Command{
		Use:   "create [--id ID] --name NAME [--profile test|civil-service]",
		Short: "Record the election this cluster runs (idempotent for the same id)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			if id == "" && t.file != nil {
				id = t.file.ElectionID
			}
			if id == "" {
				return errors.New("--id is required with --endpoints")
			}
			st, err := c.CreateElectionProfile(cmd.Context(), id, name, profile)
			if err != nil {
				return err
			}
			v := viewElection(st)
			return a.emit(v, func(w io.Writer) { printElection(w, v) })
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	cmd.Flags().StringVar(&id, "id", "", "election id (default: the cluster folder's)")
	cmd.Flags().StringVar(&name, "name", "", "election name shown to people")
	cmd.Flags().StringVar(&profile, "profile", client.ProfileTest,
		"test (opaque casts: demos, benchmarks) or civil-service (sessions, envelopes, 24 h to 8 day window)")
	return cmd
}

func (a *app) electionTransitionCommand(verb, short string) *cobra.Command {
	var conn *connFlags
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			transition := c.OpenElection
			if verb == "close" {
				transition = c.CloseElection
			}
			st, err := transition(cmd.Context())
			if err != nil {
				return err
			}
			v := viewElection(st)
			return a.emit(v, func(w io.Writer) { printElection(w, v) })
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	return cmd
}

// importReport is the JSON of `election import`.
type importReport struct {
	Read        uint64  `json:"read"`
	Imported    uint64  `json:"imported"`
	Rectified   uint64  `json:"rectified"`
	Unchanged   uint64  `json:"unchanged"`
	TotalVoters uint64  `json:"total_voters"`
	Seconds     float64 `json:"seconds"`
}

func (a *app) electionImportCommand() *cobra.Command {
	var conn *connFlags
	var path, format string
	cmd := &cobra.Command{
		Use:   "import --file F",
		Short: "Stream a voter roll (CSV with a header; JSON lines; or a JSON array) into the election",
		Long: "Stream a voter roll into the election. The file is read as it is sent, so its size\n" +
			"does not matter. CSV needs a header naming voter_id and optionally name, email,\n" +
			"date_of_birth (YYYY-MM-DD or DD/MM/YYYY), secret (the non-trivial identifier, stored by\n" +
			"the cluster only as a peppered bcrypt hash), composante, college and secteur.\n" +
			"Import is idempotent: after a failure, run it again with the same file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			r, err := a.importVoterFile(cmd.Context(), c, path, format)
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) {
				fprintf(w, "read %d voters in %.1fs: %d imported (%d rectifications), %d unchanged; the roll holds %d voters\n",
					r.Read, r.Seconds, r.Imported, r.Rectified, r.Unchanged, r.TotalVoters)
			})
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	cmd.Flags().StringVar(&path, "file", "", "voter file; - reads standard input")
	cmd.Flags().StringVar(&format, "format", formatAuto, "auto, csv, jsonl or json")
	must(cmd.MarkFlagRequired("file"))
	return cmd
}

// importVoterFile streams the voters of path to the cluster, drawing progress on a terminal.
func (a *app) importVoterFile(ctx context.Context, c *client.Client, path, format string) (*importReport, error) {
	in, closeIn, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	vr, err := newVoterReader(in, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var read atomic.Uint64
	var sent atomic.Bool
	start := time.Now()
	stop := a.ticker(500*time.Millisecond, func() {
		if !sent.Load() {
			a.progress("importing: %d voters read", read.Load())
			return
		}
		// The cluster commits the roll once it has all of it: show the roll growing.
		poll, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if counts, err := c.Counts(poll, client.Stale()); err == nil {
			a.progress("importing: %d voters sent, %d on the roll", read.Load(), counts.Voters)
		}
	})
	resp, err := c.ImportVoters(ctx, func() (*urnepb.Voter, error) {
		v, err := vr.Next()
		switch {
		case err == nil:
			read.Add(1)
		case err == io.EOF:
			sent.Store(true)
		default:
			err = fmt.Errorf("%s: %w", path, err)
		}
		return v, err
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("import stopped after %d voters (import is idempotent: run it again): %w", read.Load(), err)
	}
	return &importReport{Read: read.Load(), Imported: resp.GetImported(), Rectified: resp.GetRectified(), Unchanged: resp.GetUnchanged(),
		TotalVoters: resp.GetTotalVoters(), Seconds: time.Since(start).Seconds()}, nil
}

// openInput opens a file, or standard input for "-".
func openInput(path string) (io.Reader, func(), error) {
	if path == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// readOptions turns --stale and --node into client read options.
func readOptions(t *clusterTarget, stale bool, nodeID string) ([]client.ReadOption, error) {
	var opts []client.ReadOption
	if stale {
		opts = append(opts, client.Stale())
	}
	if nodeID != "" {
		ep, err := t.endpointOf(nodeID)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.OnEndpoint(ep))
	}
	return opts, nil
}

// countsView is the JSON of `election counts`.
type countsView struct {
	Voters      uint64 `json:"voters"`
	Emargements uint64 `json:"emargements"`
	Ballots     uint64 `json:"ballots"`
	Phase       string `json:"phase"`
	Index       uint64 `json:"index"`
}

func viewCounts(r *urnepb.CountsResponse) countsView {
	return countsView{Voters: r.GetVoters(), Emargements: r.GetEmargements(), Ballots: r.GetBallots(),
		Phase: phaseName(r.GetPhase()), Index: r.GetIndex()}
}

func (a *app) electionCountsCommand() *cobra.Command {
	var conn *connFlags
	var stale bool
	var nodeID string
	cmd := &cobra.Command{
		Use:   "counts [--stale] [--node ID]",
		Short: "Count voters, émargements and ballots",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			opts, err := readOptions(t, stale, nodeID)
			if err != nil {
				return err
			}
			resp, err := c.Counts(cmd.Context(), opts...)
			if err != nil {
				return err
			}
			v := viewCounts(resp)
			return a.emit(v, func(w io.Writer) {
				fprintf(w, "voters %d, émargements %d, ballots %d (%s, index %d)\n", v.Voters, v.Emargements, v.Ballots, v.Phase, v.Index)
			})
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the local replica at once instead of a linearizable read")
	cmd.Flags().StringVar(&nodeID, "node", "", "ask this node (id or host:port)")
	return cmd
}

// receiptView is the JSON of `election cast`.
type receiptView struct {
	ElectionID  string     `json:"election_id"`
	Fingerprint string     `json:"fingerprint"`
	EmargedAt   *time.Time `json:"emarged_at,omitempty"`
	Replayed    bool       `json:"replayed"`
	Index       uint64     `json:"index"`
}

func (a *app) electionCastCommand() *cobra.Command {
	var conn *connFlags
	var voter, ballotFile, ballot, requestID string
	cmd := &cobra.Command{
		Use:   "cast --voter ID (--ballot STRING | --ballot-file F)",
		Short: "Cast one ballot and print the receipt",
		Long: "Cast one ballot (opaque bytes, normally encrypted by the voter's device) and print the\n" +
			"receipt. Give --request-id to make a retry after an unknown outcome safe.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := ballotBytes(ballot, ballotFile)
			if err != nil {
				return err
			}
			c, _, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			if requestID == "" {
				requestID = client.NewRequestID()
			}
			resp, err := c.CastWithRequestID(cmd.Context(), requestID, voter, body)
			if err != nil {
				return fmt.Errorf("%w (request id %s)", err, requestID)
			}
			rc := resp.GetReceipt()
			v := receiptView{ElectionID: rc.GetElectionId(), Fingerprint: hex.EncodeToString(rc.GetFingerprint()),
				EmargedAt: unixNano(rc.GetEmargedAtUnixNano()), Replayed: resp.GetReplayed(), Index: resp.GetIndex()}
			return a.emit(v, func(w io.Writer) { printReceipt(w, v) })
		},
	}
	conn = addConnFlags(cmd, roleApp)
	cmd.Flags().StringVar(&voter, "voter", "", "voter id")
	cmd.Flags().StringVar(&ballot, "ballot", "", "ballot text")
	cmd.Flags().StringVar(&ballotFile, "ballot-file", "", "file holding the ballot bytes")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key (default: a new one)")
	must(cmd.MarkFlagRequired("voter"))
	cmd.MarkFlagsMutuallyExclusive("ballot", "ballot-file")
	cmd.MarkFlagsOneRequired("ballot", "ballot-file")
	return cmd
}

func ballotBytes(text, path string) ([]byte, error) {
	if path == "" {
		return []byte(text), nil
	}
	in, closeIn, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	body, err := io.ReadAll(io.LimitReader(in, maxBallotFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading ballot: %w", err)
	}
	if len(body) > maxBallotFile {
		return nil, fmt.Errorf("ballot file %s is larger than %d bytes", path, maxBallotFile)
	}
	return body, nil
}

func printReceipt(w io.Writer, v receiptView) {
	fprintf(w, "receipt for election %s\n", v.ElectionID)
	fprintf(w, "  fingerprint  %s\n", v.Fingerprint)
	if v.EmargedAt != nil {
		fprintf(w, "  emarged at   %s\n", v.EmargedAt.Format(time.RFC3339Nano))
	}
	fprintf(w, "  index        %d\n", v.Index)
	if v.Replayed {
		fprintf(w, "  (this request had already been recorded: first receipt returned)\n")
	}
}

func (a *app) electionHasVotedCommand() *cobra.Command {
	var conn *connFlags
	var voter string
	var stale bool
	cmd := &cobra.Command{
		Use:   "has-voted --voter ID",
		Short: "Read a voter's émargement",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			opts, _ := readOptions(t, stale, "")
			resp, err := c.HasVoted(cmd.Context(), voter, opts...)
			if err != nil {
				return err
			}
			v := struct {
				VoterID   string     `json:"voter_id"`
				Voted     bool       `json:"voted"`
				EmargedAt *time.Time `json:"emarged_at,omitempty"`
			}{voter, resp.GetVoted(), unixNano(resp.GetEmargedAtUnixNano())}
			return a.emit(v, func(w io.Writer) {
				if !v.Voted {
					fprintf(w, "%s has not voted\n", voter)
					return
				}
				fprintf(w, "%s voted", voter)
				if v.EmargedAt != nil {
					fprintf(w, " at %s", v.EmargedAt.Format(time.RFC3339Nano))
				}
				fprintf(w, "\n")
			})
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	cmd.Flags().StringVar(&voter, "voter", "", "voter id")
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the local replica")
	must(cmd.MarkFlagRequired("voter"))
	return cmd
}

func (a *app) electionFingerprintsCommand() *cobra.Command {
	var conn *connFlags
	var stale bool
	var nodeID string
	cmd := &cobra.Command{
		Use:   "fingerprints",
		Short: "List the fingerprints of the ballot box, in box order (not cast order)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			opts, err := readOptions(t, stale, nodeID)
			if err != nil {
				return err
			}
			return a.listFingerprints(cmd.Context(), c, opts)
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the local replica")
	cmd.Flags().StringVar(&nodeID, "node", "", "ask this node (id or host:port)")
	return cmd
}

// listFingerprints prints one hex fingerprint per line as they arrive; -o json has to
// gather them into one document first.
func (a *app) listFingerprints(ctx context.Context, c *client.Client, opts []client.ReadOption) error {
	if !a.jsonOutput() {
		a.streaming()
		return c.Fingerprints(ctx, func(fp []byte) error {
			_, err := fmt.Fprintln(a.stdout, hex.EncodeToString(fp))
			return err
		}, opts...)
	}
	fps := []string{}
	if err := c.Fingerprints(ctx, func(fp []byte) error {
		fps = append(fps, hex.EncodeToString(fp))
		return nil
	}, opts...); err != nil {
		return err
	}
	v := struct {
		Count        int      `json:"count"`
		Fingerprints []string `json:"fingerprints"`
	}{len(fps), fps}
	return a.emit(v, nil)
}
