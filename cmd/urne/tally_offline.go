package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/ceremony"
	"github.com/urne-vote/urne/tally"
)

// Files `tally offline` writes.
const (
	minutesJSONFile  = "pv.json"
	minutesTextFile  = "pv.txt"
	fingerprintsFile = "fingerprints.txt"
	votesFile        = "votes.jsonl"
)

// exitMismatch is the exit code of a tally whose box and émargement list disagree: the
// minutes are written, with the anomaly, but the bureau must look.
const exitMismatch = 3

type tallyFlags struct {
	fragments, signatories                []string
	ballots, out, record, config, passDir string
	emargements                           int
}

func (a *app) tallyOfflineCommand() *cobra.Command {
	var f tallyFlags
	cmd := &cobra.Command{
		Use:   "offline --fragments FILE... --ballots FILE --out DIR",
		Short: "Rebuild the election key from fragments and count an exported ballot box",
		Long: "Run offline, on a machine the bureau controls. Each holder unlocks their fragment with\n" +
			"their passphrase; the key is rebuilt only in this process's memory, the ballots of the\n" +
			"export (docs/BALLOT.md) are decrypted and counted, and the key is zeroed. The folder\n" +
			"receives pv.json (to sign with `urne keys sign`), pv.txt, fingerprints.txt, the\n" +
			"sorted list of ballot fingerprints voters check their receipts against, and votes.jsonl,\n" +
			"the decrypted ballots sorted (no fingerprint) for the archive. Exit code 3\n" +
			"means the box and the émargement list disagree; the minutes record it.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return a.runTally(f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.fragments, "fragments", nil, "locked fragment files (repeat, or comma-separated)")
	fl.StringVar(&f.ballots, "ballots", "", "ballot export file (JSON lines)")
	fl.StringVar(&f.out, "out", "", "folder for the minutes")
	fl.StringVar(&f.record, "ceremony", "", "ceremony.json: checks the fragments' policy and names the signatories")
	fl.StringVar(&f.config, "election-config", "", "election description (scrutins and lists), JSON; default: the export's")
	fl.StringVar(&f.passDir, "passphrase-dir", "", "folder with one passphrase file per holder (default: ask on the terminal)")
	fl.IntVar(&f.emargements, "emargements", -1, "émargement entries to check against; default: the export's count")
	fl.StringSliceVar(&f.signatories, "signatories", nil, "members who must sign the minutes (default: every bureau member of --ceremony)")
	for _, name := range []string{"fragments", "ballots", "out"} {
		must(cmd.MarkFlagRequired(name))
	}
	return cmd
}

func (a *app) runTally(f tallyFlags) error {
	record, err := loadRecord(f.record)
	if err != nil {
		return err
	}
	keys, holders, err := a.rebuildKeys(f, record)
	if err != nil {
		return err
	}
	defer keys.Zero()
	file, err := os.Open(f.ballots)
	if err != nil {
		return err
	}
	defer func() { _ = file.Close() }()
	exp, err := tally.ReadExport(file)
	if err != nil {
		return fmt.Errorf("%s: %w", f.ballots, err)
	}
	election, err := electionFor(f.config, exp.Header)
	if err != nil {
		return err
	}
	emargements := exp.Header.Emargements
	if f.emargements >= 0 {
		emargements = f.emargements
	}
	res, countErr := tally.Count(keys, election, exp.Ballots(), emargements)
	if countErr != nil && !errors.Is(countErr, tally.ErrMismatch) {
		return countErr
	}
	m := minutesFor(election, exp.Header, record, holders, res, f.signatories)
	if err := writeMinutes(f.out, m); err != nil {
		return err
	}
	if err := a.emitTally(f.out, m); err != nil {
		return err
	}
	if countErr != nil {
		return &exitError{code: exitMismatch, msg: countErr.Error() + "; the minutes record it"}
	}
	return nil
}

func loadRecord(path string) (*ceremony.PublicKeys, error) {
	if path == "" {
		return nil, nil
	}
	b, err := readBounded(path, maxInputFile)
	if err != nil {
		return nil, err
	}
	return ceremony.ParsePublicKeys(b)
}

// rebuildKeys unlocks each fragment with its holder's passphrase and rebuilds the keys.
func (a *app) rebuildKeys(f tallyFlags, record *ceremony.PublicKeys) (*ceremony.PrivateKeys, []string, error) {
	if len(f.fragments) == 0 {
		return nil, nil, errors.New("no fragment given: --fragments names the locked fragment files")
	}
	src := &passphrases{dir: f.passDir}
	var frags []*ceremony.Fragment
	defer func() {
		for _, fr := range frags {
			fr.Zero()
		}
	}()
	var holders []string
	for _, path := range f.fragments {
		fr, err := unlockFragment(src, path)
		if err != nil {
			return nil, nil, err
		}
		frags, holders = append(frags, fr), append(holders, fr.Holder)
	}
	policyText := frags[0].Policy
	if record != nil {
		policyText = record.Policy
	}
	policy, err := ceremony.ParsePolicy(policyText)
	if err != nil {
		return nil, nil, err
	}
	keys, err := ceremony.Rebuild(policy, frags)
	if err != nil {
		return nil, nil, err
	}
	if record != nil && !bytes.Equal(keys.CeremonyID, record.CeremonyID) {
		keys.Zero()
		return nil, nil, fmt.Errorf("the fragments come from ceremony %x, not from ceremony %s of the record", keys.CeremonyID, record.CeremonyID)
	}
	return keys, holders, nil
}

func unlockFragment(src *passphrases, path string) (*ceremony.Fragment, error) {
	raw, err := readBounded(path, maxInputFile)
	if err != nil {
		return nil, err
	}
	locked, err := ceremony.ParseLockedFile(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pass, err := src.get(locked.Owner, locked.Owner, false)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	return locked.UnlockFragment(pass)
}

func electionFor(configPath string, h tally.ExportHeader) (tally.Election, error) {
	switch {
	case configPath != "":
		b, err := readBounded(configPath, maxInputFile)
		if err != nil {
			return tally.Election{}, err
		}
		var e tally.Election
		if err := json.Unmarshal(b, &e); err != nil {
			return tally.Election{}, fmt.Errorf("election configuration %s: %w", configPath, err)
		}
		return e, nil
	case h.Election != nil:
		return *h.Election, nil
	}
	return tally.Election{ID: h.ElectionID}, nil
}

func minutesFor(e tally.Election, h tally.ExportHeader, record *ceremony.PublicKeys, holders []string, res *tally.Result, signatories []string) *tally.Minutes {
	m := &tally.Minutes{
		ElectionID: e.ID, ElectionName: e.Name, ClosedAt: h.ClosedAt, TalliedAt: time.Now().UTC().Truncate(time.Second),
		Fragments: holders, Result: res, Anomalies: tally.Anomalies(res),
	}
	if m.ElectionID == "" {
		m.ElectionID = h.ElectionID
	}
	if record != nil {
		m.CeremonyID, m.Policy = record.CeremonyID, record.Policy
	}
	m.Signatories = signatoriesFor(record, holders, signatories)
	return m
}

// signatoriesFor: the members named by --signatories, else every bureau member of the
// ceremony record, else the holders whose fragments were used.
func signatoriesFor(record *ceremony.PublicKeys, holders, names []string) []tally.Signatory {
	var out []tally.Signatory
	switch {
	case len(names) > 0:
		for _, n := range names {
			out = append(out, memberSignatory(record, n))
		}
	case record != nil:
		for _, mk := range record.Members {
			out = append(out, tally.Signatory{Name: mk.Name, Role: string(mk.Role), FullName: mk.FullName})
		}
	default:
		for _, n := range holders {
			out = append(out, tally.Signatory{Name: n})
		}
	}
	return out
}

func memberSignatory(record *ceremony.PublicKeys, name string) tally.Signatory {
	if record != nil {
		for _, mk := range record.Members {
			if mk.Name == name {
				return tally.Signatory{Name: mk.Name, Role: string(mk.Role), FullName: mk.FullName}
			}
		}
	}
	return tally.Signatory{Name: name}
}

func writeMinutes(dir string, m *tally.Minutes) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pv, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, minutesJSONFile), pv, 0o644); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, minutesTextFile), []byte(m.Text()), 0o644); err != nil {
		return err
	}
	if err := writeNew(filepath.Join(dir, fingerprintsFile), fingerprintList(m.Result), 0o644); err != nil {
		return err
	}
	votes, err := voteList(m.Result)
	if err != nil {
		return err
	}
	return writeNew(filepath.Join(dir, votesFile), votes, 0o644)
}

// voteList is the decrypted ballots the count counted, one JSON vote per line, sorted: what
// the archive keeps of them, with no fingerprint and in no order of the box or the casts.
func voteList(res *tally.Result) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, v := range res.Votes() {
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// fingerprintList is the published list: one hex fingerprint per line, sorted, the leaf order
// of the box digest's Merkle tree.
func fingerprintList(res *tally.Result) []byte {
	var b strings.Builder
	for _, fp := range res.Fingerprints() {
		b.WriteString(hex.EncodeToString(fp))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// tallyReport is the JSON of `tally offline`.
type tallyReport struct {
	Dir     string        `json:"dir"`
	Minutes string        `json:"minutes"`
	Result  *tally.Result `json:"result"`
}

func (a *app) emitTally(dir string, m *tally.Minutes) error {
	r := tallyReport{Dir: dir, Minutes: filepath.Join(dir, minutesJSONFile), Result: m.Result}
	return a.emit(r, func(w io.Writer) {
		fprintf(w, "%s", m.Text())
		fprintf(w, "\nminutes: %s (sign with `urne keys sign --key signing/NAME.json --file %s`)\n", r.Minutes, r.Minutes)
	})
}
