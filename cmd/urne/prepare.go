package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/urnepb"
)

// prepareChunk is how many voters are hashed between two durable writes of the output: a
// crash loses at most one chunk of work.
const prepareChunk = 2048

// preparedColumns is the header of a prepared roll: the roll's columns, secret_bcrypt in
// place of secret.
var preparedColumns = []string{"voter_id", "name", "email", "date_of_birth", "secret_bcrypt", "composante", "college", "secteur"}

// prepareReport is the JSON of `election prepare`.
type prepareReport struct {
	Voters   uint64  `json:"voters"`
	Resumed  uint64  `json:"resumed"`
	Hashed   uint64  `json:"hashed"`
	Cost     int     `json:"cost"`
	Seconds  float64 `json:"seconds"`
	Prepared string  `json:"prepared"`
}

func (a *app) electionPrepareCommand() *cobra.Command {
	var in, out, format string
	var cost, workers int
	cmd := &cobra.Command{
		Use:   "prepare --file ROLL --out PREPARED",
		Short: "Hash the voters' secrets ahead of the import, on every core of this machine (resumable)",
		Long: "Compute the slow hash (bcrypt) of every voter's secret, offline, and write the roll as CSV\n" +
			"with a secret_bcrypt column instead of secret. `election import --file PREPARED` then\n" +
			"takes a million voters in seconds: the cluster only checks the cost and seals each hash\n" +
			"under its pepper key. At cost 10 a secret takes about 0.1 s of one core, so run this on\n" +
			"a machine with many cores, well before the import. Interrupted, it resumes where the\n" +
			"output stops when run again with the same files. The output holds hashes, not secrets:\n" +
			"keep it as confidential as the roll all the same.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.prepareRoll(in, out, format, cost, workers)
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) {
				fprintf(w, "prepared %d voters (%d resumed, %d secrets hashed at cost %d) in %.1fs: %s\n",
					r.Voters, r.Resumed, r.Hashed, r.Cost, r.Seconds, r.Prepared)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&in, "file", "", "voter roll, as `election import` reads it")
	fl.StringVar(&format, "format", formatAuto, "auto, csv, jsonl or json")
	fl.StringVar(&out, "out", "", "prepared roll (CSV) to write, or to resume")
	fl.IntVar(&cost, "cost", bcrypt.DefaultCost, "bcrypt cost: at least the cluster's secret_hash_cost")
	fl.IntVar(&workers, "workers", runtime.NumCPU(), "secrets hashed at once")
	must(cmd.MarkFlagRequired("file"))
	must(cmd.MarkFlagRequired("out"))
	return cmd
}

// prepareRoll hashes the roll in chunks, each written and fsync'd in input order.
func (a *app) prepareRoll(in, out, format string, cost, workers int) (*prepareReport, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("--cost %d: bcrypt takes %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	workers = max(workers, 1)
	input, closeIn, err := openInput(in)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	vr, err := newVoterReader(input, format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	done, f, err := openPrepared(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep := &prepareReport{Resumed: uint64(len(done)), Cost: cost, Prepared: out}
	start := time.Now()
	var total atomic.Uint64
	stop := a.ticker(500*time.Millisecond, func() {
		n := total.Load()
		rate := float64(n-rep.Resumed) / time.Since(start).Seconds()
		a.progress("preparing: %d voters (%.0f secrets/s, %d workers)", n, rate, workers)
	})
	defer stop()
	w := csv.NewWriter(f)
	chunk := make([]*urnepb.Voter, 0, prepareChunk)
	flush := func() error {
		hashed, err := hashChunk(chunk, cost, workers)
		if err != nil {
			return err
		}
		rep.Hashed += hashed
		for _, v := range chunk {
			_ = w.Write([]string{v.VoterId, v.Name, v.Email, v.DateOfBirth, v.SecretBcrypt, v.Composante, v.College, v.Secteur})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", out, err)
		}
		chunk = chunk[:0]
		return nil
	}
	for {
		v, err := vr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in, err)
		}
		n := total.Add(1)
		if n <= rep.Resumed {
			if id := done[n-1]; id != v.VoterId {
				return nil, fmt.Errorf("%s holds voter %q at row %d where %s has %q: not a preparation of this roll", out, id, n, in, v.VoterId)
			}
			continue
		}
		if chunk = append(chunk, v); len(chunk) == prepareChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	rep.Voters, rep.Seconds = total.Load(), time.Since(start).Seconds()
	return rep, nil
}

// hashChunk replaces each secret of chunk by its bcrypt hash, workers at a time.
func hashChunk(chunk []*urnepb.Voter, cost, workers int) (uint64, error) {
	var wg sync.WaitGroup
	var hashed atomic.Uint64
	errs := make([]error, len(chunk))
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				v := chunk[i]
				h, err := node.PrepareSecret(v.Secret, cost)
				v.Secret, v.SecretBcrypt, errs[i] = "", string(h), err
				hashed.Add(1)
			}
		})
	}
	for i, v := range chunk {
		switch {
		case v.Secret != "" && v.SecretBcrypt != "":
			errs[i] = fmt.Errorf("voter %q has both secret and secret_bcrypt", v.VoterId)
		case v.Secret != "":
			next <- i
		}
	}
	close(next)
	wg.Wait()
	return hashed.Load(), errors.Join(errs...)
}

// openPrepared opens the output for appending and returns the voter ids it already holds.
// A row cut by a crash is dropped; a new file gets the header.
func openPrepared(path string) ([]string, *os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	ids, end, err := preparedRows(f)
	if err == nil {
		err = f.Truncate(end)
	}
	if err == nil {
		_, err = f.Seek(end, io.SeekStart)
	}
	if err == nil && end == 0 {
		w := csv.NewWriter(f)
		_ = w.Write(preparedColumns)
		w.Flush()
		err = w.Error()
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("resume %s: %w", path, err)
	}
	return ids, f, nil
}

// preparedRows reads the complete rows of a prepared roll: their voter ids and the offset
// just past the last one (0 for an empty file). Every row written ends with a newline, so a
// last row without one was cut by a crash and is dropped.
func preparedRows(f *os.File) ([]string, int64, error) {
	cr := csv.NewReader(f)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, 0, nil
	}
	if err != nil || len(header) != len(preparedColumns) || header[0] != preparedColumns[0] || header[4] != preparedColumns[4] {
		return nil, 0, errors.New("the file exists and is not a prepared roll; choose another --out")
	}
	cr.FieldsPerRecord = len(preparedColumns)
	var ids []string
	ends := []int64{cr.InputOffset()}
	for {
		rec, err := cr.Read()
		if err != nil { // end of file, or a row cut short by a crash
			break
		}
		ids = append(ids, rec[0])
		ends = append(ends, cr.InputOffset())
	}
	end := ends[len(ids)]
	last := make([]byte, 1)
	if end > 0 {
		if _, err := f.ReadAt(last, end-1); err != nil {
			return nil, 0, err
		}
		switch {
		case last[0] == '\n':
		case len(ids) == 0: // the header itself was cut
			end = 0
		default:
			ids, end = ids[:len(ids)-1], ends[len(ids)-1]
		}
	}
	return ids, end, nil
}
