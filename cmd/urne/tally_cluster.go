package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/tally"
	"github.com/urne-vote/urne/transport/urnepb"
)

// boxFile is the ballot export the cluster tally writes beside the minutes: the box as the
// cluster handed it, recountable with `urne tally offline --ballots`.
const (
	boxFile     = "ballots.jsonl"
	resultsFile = "results.json"
)

// tallyCommand is `urne tally`: the count from the cluster, with `offline` for an export file.
func (a *app) tallyCommand() *cobra.Command {
	var f tallyFlags
	cmd, _ := clientCmd("tally --fragments FILE... --ceremony FILE --out DIR", "Count the ballots of the closed election (dépouillement), record the results and write the minutes",
		roleBureau, func(cmd *cobra.Command, c *client.Client) error { return a.runClusterTally(cmd.Context(), c, f) })
	cmd.Long = "Run on a machine the bureau controls, with a bureau certificate. Each holder unlocks their\n" +
		"fragment with their passphrase; the election key is rebuilt only in this process's memory.\n" +
		"The frozen box and the émargement entries per scrutin are streamed from the cluster (saved\n" +
		"as ballots.jsonl), every scrutin's ballots are checked against its émargement entries, the\n" +
		"ballots are decrypted and counted, the key is zeroed, and the digests of the results and of\n" +
		"pv.json are recorded in the cluster (the election becomes tallied). The folder receives\n" +
		"pv.json (to sign with `urne keys sign`), pv.txt, fingerprints.txt, votes.jsonl (the\n" +
		"decrypted ballots, sorted) and results.json (the bytes whose digest is recorded), which\n" +
		"`urne archive create` keeps. Running it again\n" +
		"(into another folder) must give the same results: it checks them against the recorded\n" +
		"digest and records nothing. Exit code 3: ballots and émargements differ; the minutes say\n" +
		"where, and nothing is recorded."
	fl := cmd.Flags()
	fl.StringSliceVar(&f.fragments, "fragments", nil, "locked fragment files (repeat, or comma-separated)")
	fl.StringVar(&f.out, "out", "", "folder for the minutes and the exported box")
	fl.StringVar(&f.record, "ceremony", "", "ceremony.json: checks the fragments' policy and names the signatories")
	fl.StringVar(&f.passDir, "passphrase-dir", "", "folder with one passphrase file per holder (default: ask on the terminal)")
	fl.StringSliceVar(&f.signatories, "signatories", nil, "members who must sign the minutes (default: every bureau member of --ceremony)")
	for _, name := range []string{"fragments", "out"} {
		must(cmd.MarkFlagRequired(name))
	}
	cmd.AddCommand(a.tallyOfflineCommand())
	return cmd
}

// clusterTallyReport is the JSON of `urne tally`.
type clusterTallyReport struct {
	tallyReport
	ResultsDigest string `json:"results_digest"`
	MinutesDigest string `json:"minutes_digest"`
	// Recorded is "recorded" when this run recorded the tally, "already" when a run before
	// recorded the same results.
	Recorded string `json:"recorded"`
}

func (a *app) runClusterTally(ctx context.Context, c *client.Client, f tallyFlags) error {
	st, err := c.GetElection(ctx)
	if err != nil {
		return err
	}
	if st.Phase != urnepb.ElectionPhase_PHASE_CLOSED && st.Phase != urnepb.ElectionPhase_PHASE_TALLIED {
		return fmt.Errorf("election %q is %s: the tally needs a closed election", st.ElectionId, phaseName(st.Phase))
	}
	record, err := loadRecord(f.record)
	if err != nil {
		return err
	}
	election, err := clusterElection(ctx, c, st)
	if err != nil {
		return err
	}
	keys, holders, err := a.rebuildKeys(f, record)
	if err != nil {
		return err
	}
	defer keys.Zero()
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	boxPath := filepath.Join(f.out, boxFile)
	if err := a.exportBox(ctx, c, boxPath, election); err != nil {
		return err
	}
	res, exp, countErr := countExport(keys, election, boxPath)
	if countErr != nil && !errors.Is(countErr, tally.ErrMismatch) {
		return countErr
	}
	if err := tally.CheckScrutins(res, exp.Header.EmargementsByScrutin); err != nil && countErr == nil {
		countErr = err
	}
	m := minutesFor(election, exp.Header, record, holders, res, f.signatories)
	m.OpenedAt, m.Anomalies = exp.Header.OpenedAt, tally.Anomalies(res)
	if err := writeMinutes(f.out, m); err != nil {
		return err
	}
	if countErr != nil {
		_ = a.emitTally(f.out, m)
		return &exitError{code: exitMismatch, msg: countErr.Error() + "; the minutes record it and the tally is not recorded"}
	}
	return a.recordTally(ctx, c, st, f.out, m)
}

// countExport counts the ballots of the export written at path.
func countExport(keys tally.BallotOpener, election tally.Election, path string) (*tally.Result, *tally.Export, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = file.Close() }()
	exp, err := tally.ReadExport(file)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	res, err := tally.Count(keys, election, exp.Ballots(), exp.Header.Emargements)
	return res, exp, err
}

// recordTally records the digests of the results and of pv.json, or checks a re-run against
// the results recorded before.
func (a *app) recordTally(ctx context.Context, c *client.Client, st *urnepb.ElectionState, dir string, m *tally.Minutes) error {
	results, err := json.Marshal(m.Result)
	if err != nil {
		return err
	}
	resultsDigest := sha256.Sum256(results)
	// The exact bytes recorded, for `urne archive create --results`.
	if err := writeNew(filepath.Join(dir, resultsFile), results, 0o644); err != nil {
		return err
	}
	pv, err := os.ReadFile(filepath.Join(dir, minutesJSONFile))
	if err != nil {
		return err
	}
	minutesDigest := sha256.Sum256(pv)
	r := clusterTallyReport{tallyReport: tallyReport{Dir: dir, Minutes: filepath.Join(dir, minutesJSONFile), Result: m.Result},
		ResultsDigest: fmt.Sprintf("%x", resultsDigest), MinutesDigest: fmt.Sprintf("%x", minutesDigest), Recorded: "recorded"}
	if st.Phase == urnepb.ElectionPhase_PHASE_TALLIED {
		if !bytes.Equal(st.ResultsDigest, resultsDigest[:]) {
			return fmt.Errorf("this count gives results %x, but the tally recorded at %s gave %x: the box or the keys differ",
				resultsDigest, time.Unix(0, st.TalliedAtUnixNano).UTC().Format(time.RFC3339), st.ResultsDigest)
		}
		r.Recorded = "already"
	} else if _, err := c.RecordTally(ctx, resultsDigest[:], minutesDigest[:]); err != nil {
		return fmt.Errorf("the minutes are written in %s but the tally could not be recorded: %w", dir, err)
	}
	return a.emit(r, func(w io.Writer) {
		fprintf(w, "%s", m.Text())
		if r.Recorded == "already" {
			fprintf(w, "\nthe results equal those recorded at %s; nothing recorded\n", time.Unix(0, st.TalliedAtUnixNano).UTC().Format(time.RFC3339))
		} else {
			fprintf(w, "\nrecorded: results %s, minutes %s\n", r.ResultsDigest, r.MinutesDigest)
		}
		fprintf(w, "minutes: %s (sign with `urne keys sign --key signing/NAME.json --file %s`)\n", r.Minutes, r.Minutes)
	})
}

// clusterElection is the description of the election the tally counts against: its scrutins
// and their lists as sealed in the cluster.
func clusterElection(ctx context.Context, c *client.Client, st *urnepb.ElectionState) (tally.Election, error) {
	sc, err := c.ListScrutins(ctx)
	if err != nil {
		return tally.Election{}, err
	}
	e := tally.Election{ID: st.ElectionId, Name: st.Name}
	for _, s := range sc.Scrutins {
		ts := tally.Scrutin{ID: s.ScrutinId, Name: s.Name}
		for _, l := range sc.Lists {
			if l.ScrutinId != s.ScrutinId {
				continue
			}
			tl := tally.List{ID: l.ListId, Name: l.Name}
			for _, cand := range l.Candidates {
				tl.Candidates = append(tl.Candidates, cand.Name)
			}
			ts.Lists = append(ts.Lists, tl)
		}
		e.Scrutins = append(e.Scrutins, ts)
	}
	return e, nil
}

// exportBox streams the frozen box into a ballot export file, checking on the way that the
// ballots hash to the root recorded at close.
func (a *app) exportBox(ctx context.Context, c *client.Client, path string, election tally.Election) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("exported box: %w", err)
	}
	var got atomic.Int64
	var total uint64
	stop := a.ticker(500*time.Millisecond, func() { a.progress("exporting the box: %d of %d ballots", got.Load(), total) })
	var ew *tally.ExportWriter
	err = c.ExportBox(ctx, func(h *urnepb.BoxHeader) error {
		total = h.Ballots
		eh := tally.ExportHeader{ElectionID: h.ElectionId, Ballots: int(h.Ballots), BoxDigest: h.BoxRoot,
			Election: &election, EmargementsByScrutin: map[string]int{}}
		for id, n := range h.Emargements {
			eh.EmargementsByScrutin[id] = int(n)
			eh.Emargements += int(n)
		}
		if h.ClosedAtUnixNano != 0 {
			t := time.Unix(0, h.ClosedAtUnixNano).UTC()
			eh.ClosedAt = &t
		}
		if h.OpenedAtUnixNano != 0 {
			t := time.Unix(0, h.OpenedAtUnixNano).UTC()
			eh.OpenedAt = &t
		}
		var err error
		ew, err = tally.NewExportWriter(file, eh)
		return err
	}, func(b *urnepb.BoxBallot) error {
		got.Add(1)
		return ew.Add(b.Ballot)
	})
	stop()
	if err == nil {
		err = ew.Close()
	}
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("export the box: %w", err)
	}
	return nil
}
