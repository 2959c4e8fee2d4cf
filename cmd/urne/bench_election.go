package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Defaults of `urne bench election`.
const (
	defaultElectionBenchVoters = 1_000_000
	// memorySampleEvery is how often the nodes' resident memory is read during the run.
	memorySampleEvery = 250 * time.Millisecond
	// restartWait bounds the restart after the count.
	restartWait = 10 * time.Minute
)

// electionBenchReport is the JSON of `bench election`: one whole election at scale.
type electionBenchReport struct {
	Voters        int     `json:"voters"`
	ImportSeconds float64 `json:"import_seconds"`
	ImportPerSec  float64 `json:"import_voters_per_second"`
	// Cast is the load that cast every voter's ballot once.
	Cast         benchReport `json:"cast"`
	CloseSeconds float64     `json:"close_seconds"`
	// Counted is the number of ballots in the box exported after the close; it must equal
	// the émargements and the acknowledged casts.
	Counted      uint64  `json:"counted"`
	Emargements  uint64  `json:"emargements"`
	CountSeconds float64 `json:"count_seconds"`
	// RestartSeconds is how long every node, stopped at once after the count, took to start
	// again on the election's files (page cache warm) until all answered under one leader.
	RestartSeconds float64 `json:"restart_seconds"`
	TotalSeconds   float64 `json:"total_seconds"`
	// TermsBegun is how many raft terms began during each phase (import, cast, close,
	// count), from the highest term the nodes answer with at each phase's start and end:
	// each one is an election, because a follower stopped hearing from its leader. A phase
	// is absent when no node answered at one of its ends.
	TermsBegun map[string]uint64 `json:"terms_begun,omitempty"`
	// Nodes is each node's peak resident memory and data directory size.
	Nodes           []nodeFootprint `json:"nodes"`
	MaxRSSBytes     uint64          `json:"max_rss_bytes"`
	DataBytesPerBal float64         `json:"data_bytes_per_ballot"`
	Complete        bool            `json:"complete"`
}

// nodeFootprint is what one node process held at its peak and left on disk.
type nodeFootprint struct {
	Node string `json:"node"`
	// PeakRSSBytes is the highest resident set sampled during the run; HWMBytes is the
	// kernel's high-water mark at the end (VmHWM), which also covers moments between samples.
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`
	HWMBytes     uint64 `json:"hwm_bytes"`
	// PeakAnonBytes is the highest anonymous part of the resident set sampled (heap, stacks):
	// the rest is the state and log databases' mapped file pages, which the kernel can
	// reclaim.
	PeakAnonBytes uint64 `json:"peak_anon_bytes"`
	DataBytes     int64  `json:"data_bytes"`
}

func (a *app) benchElectionCommand() *cobra.Command {
	var conn *connFlags
	o := loadOptions{}
	var roll string
	cmd := &cobra.Command{
		Use:   "election --cluster DIR",
		Short: "Run a whole election at scale on a local cluster: import, everyone casts, close, count",
		Long: "On a fresh local cluster (urne dev up): create a test election, import --voters synthetic\n" +
			"voters (or the --roll file), open it, cast one random ballot for every voter from --concurrency voters at once,\n" +
			"close it, then stream the closed box back and check that it holds one ballot per\n" +
			"émargement and per acknowledged cast, and restart every node at once. Throughout, each node's resident memory is sampled;\n" +
			"at the end each node's data directory is measured.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if conn.cluster == "" {
				return errors.New("bench election needs --cluster: the folder of a local cluster (urne dev up)")
			}
			d, err := openDevCluster(conn.cluster, "")
			if err != nil {
				return err
			}
			r, err := a.benchElection(cmd.Context(), conn, d, o, roll)
			if r == nil {
				return err
			}
			if emitErr := a.emit(r, func(w io.Writer) { printElectionBench(w, r) }); emitErr != nil {
				return emitErr
			}
			return err
		},
	}
	conn = addConnFlags(cmd, roleOperator)
	fl := cmd.Flags()
	fl.IntVar(&o.voters, "voters", defaultElectionBenchVoters, "voters on the roll, each of whom casts once")
	fl.IntVar(&o.concurrency, "concurrency", defaultBenchConcurrency, "casts in flight")
	fl.IntVar(&o.ballotSize, "ballot-size", defaultBenchBallotSize, "bytes per random ballot")
	fl.StringVar(&roll, "roll", "", "voter file to import instead of synthetic voters (ids v000001...: go run ./test/benchroll)")
	return cmd
}

// benchElection runs the election's phases in order; a phase that fails ends the run with
// the report so far (Complete false).
func (a *app) benchElection(ctx context.Context, conn *connFlags, d *devCluster, o loadOptions, roll string) (*electionBenchReport, error) {
	mem := watchMemory(d)
	defer mem.stop()
	start := time.Now()
	r := &electionBenchReport{Voters: o.voters}
	finish := func(err error) (*electionBenchReport, error) {
		mem.stop()
		r.TotalSeconds = time.Since(start).Seconds()
		r.Nodes = mem.footprints(d)
		for _, n := range r.Nodes {
			r.MaxRSSBytes = max(r.MaxRSSBytes, n.PeakRSSBytes, n.HWMBytes)
			if r.Counted > 0 {
				r.DataBytesPerBal = max(r.DataBytesPerBal, float64(n.DataBytes)/float64(r.Counted))
			}
		}
		r.Complete = err == nil
		return r, err
	}

	op, t, err := conn.dialAs(roleOperator)
	if err != nil {
		return nil, err
	}
	defer closeClient(op)
	if err := a.createElection(ctx, op, t, benchElectionName); err != nil {
		return nil, err
	}
	terms := phaseTerms{ask: func() uint64 { return highestTerm(ctx, op, t.nodes()) }, begun: map[string]uint64{}}
	r.TermsBegun = terms.begun
	terms.enter("import")
	began := time.Now()
	if roll == "" {
		err = a.importSynthetic(ctx, op, o.voters)
	} else {
		var imp *importReport
		if imp, err = a.importVoterFile(ctx, op, roll, formatAuto); err == nil {
			o.voters, r.Voters = int(imp.TotalVoters), int(imp.TotalVoters)
		}
	}
	if err != nil {
		return finish(err)
	}
	r.ImportSeconds = time.Since(began).Seconds()
	r.ImportPerSec = float64(o.voters) / r.ImportSeconds
	terms.enter("cast")
	if _, err := op.OpenElection(ctx); err != nil {
		return finish(fmt.Errorf("opening the election: %w", err))
	}

	caster, _, err := conn.dialAs(roleApp)
	if err != nil {
		return finish(err)
	}
	defer closeClient(caster)
	cast, err := a.benchLoad(ctx, caster, o, d.dir) // no duration: until every voter has cast
	if cast == nil {
		return finish(err)
	}
	r.Cast = *cast
	if err != nil {
		return finish(err)
	}

	terms.enter("close")
	began = time.Now()
	if _, err := op.CloseElection(ctx); err != nil {
		return finish(fmt.Errorf("closing the election: %w", err))
	}
	r.CloseSeconds = time.Since(began).Seconds()
	terms.enter("count")

	// Only the bureau may read the box: the bench issues itself a bureau certificate with
	// the local cluster's CA, as `urne cluster issue-client` would.
	if _, err := os.Stat(filepath.Join(d.dir, client.ClientsDir, roleBureau+".crt")); errors.Is(err, fs.ErrNotExist) {
		if err := issueClient(d.dir, roleBureau); err != nil {
			return finish(fmt.Errorf("issuing a bureau certificate to count the box: %w", err))
		}
	}
	bureau, _, err := conn.dialAs(roleBureau)
	if err != nil {
		return finish(err)
	}
	defer closeClient(bureau)
	began = time.Now()
	err = bureau.ExportBox(ctx, func(h *urnepb.BoxHeader) error {
		for _, n := range h.Emargements {
			r.Emargements += n
		}
		return nil
	}, func(*urnepb.BoxBallot) error {
		r.Counted++
		if r.Counted%10_000 == 0 {
			a.progress("counting the box: %d ballots", r.Counted)
		}
		return nil
	})
	a.progressDone()
	r.CountSeconds = time.Since(began).Seconds()
	if err != nil {
		return finish(fmt.Errorf("exporting the box: %w", err))
	}
	if acked := uint64(r.Cast.Acknowledged); r.Counted != r.Emargements || r.Counted != acked || r.Cast.Failed+r.Cast.Unknown > 0 {
		return finish(fmt.Errorf("the box holds %d ballots for %d émargements and %d acknowledged casts (%d failed, %d unknown)",
			r.Counted, r.Emargements, acked, r.Cast.Failed, r.Cast.Unknown))
	}
	terms.enter("")
	began = time.Now()
	if err := restartAll(ctx, d); err != nil {
		return finish(fmt.Errorf("restarting every node: %w", err))
	}
	r.RestartSeconds = time.Since(began).Seconds()
	return finish(nil)
}

// electionPhases are the phases whose terms begun the report gives, in their order.
var electionPhases = []string{"import", "cast", "close", "count"}

// phaseTerms counts the raft terms that began during each phase of the run.
type phaseTerms struct {
	ask   func() uint64 // the highest term the nodes answer with; 0 when none answered
	phase string
	term  uint64
	begun map[string]uint64
}

// enter ends the current phase and begins the named one ("" begins none).
func (p *phaseTerms) enter(phase string) {
	term := p.ask()
	if p.phase != "" && p.term != 0 && term >= p.term {
		p.begun[p.phase] = term - p.term
	}
	p.phase, p.term = phase, term
}

// highestTerm asks every node for its term and returns the highest answered.
func highestTerm(ctx context.Context, c *client.Client, nodes []targetNode) uint64 {
	var term uint64
	for _, a := range askNodes(ctx, c, nodes) {
		term = max(term, a.info.GetTerm())
	}
	return term
}

// restartAll stops every node of d, starts them again and waits until all answer under one
// leader: each node reads its files whole before it serves.
func restartAll(ctx context.Context, d *devCluster) error {
	if _, err := d.stopAll(stopGrace); err != nil {
		return err
	}
	for _, id := range d.ids() {
		if _, _, err := d.start(id); err != nil {
			return err
		}
	}
	_, err := waitDevReady(ctx, d, d.ids(), true, restartWait)
	return err
}

func printElectionBench(w io.Writer, r *electionBenchReport) {
	fprintf(w, "election of %d voters: %s in %.1fs\n", r.Voters, map[bool]string{true: "complete", false: "INCOMPLETE"}[r.Complete], r.TotalSeconds)
	fprintf(w, "  import  %.1fs (%.0f voters/s)\n", r.ImportSeconds, r.ImportPerSec)
	printBench(w, r.Cast, "  cast    ")
	fprintf(w, "  close   %.1fs\n", r.CloseSeconds)
	fprintf(w, "  count   %d ballots, %d émargements, in %.1fs\n", r.Counted, r.Emargements, r.CountSeconds)
	fprintf(w, "  restart %.1fs (every node at once, until all answer under one leader)\n", r.RestartSeconds)
	if len(r.TermsBegun) > 0 {
		var parts []string
		for _, phase := range electionPhases {
			if n, ok := r.TermsBegun[phase]; ok {
				parts = append(parts, fmt.Sprintf("%s %d", phase, n))
			}
		}
		fprintf(w, "  raft terms begun: %s\n", strings.Join(parts, ", "))
	}
	for _, n := range r.Nodes {
		fprintf(w, "  %-10s peak RSS %s (VmHWM %s, anonymous %s), data %s\n", n.Node, mib(n.PeakRSSBytes), mib(n.HWMBytes), mib(n.PeakAnonBytes), mib(uint64(n.DataBytes)))
	}
	if r.DataBytesPerBal > 0 {
		fprintf(w, "  data directory: %.0f bytes per ballot on the largest node\n", r.DataBytesPerBal)
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// memoryWatch samples each node process's resident set until stopped, keeping the peak.
type memoryWatch struct {
	mu    sync.Mutex
	peak  map[string]uint64
	anon  map[string]uint64
	pids  map[string]int
	done  chan struct{}
	once  sync.Once
	ended sync.WaitGroup
}

func watchMemory(d *devCluster) *memoryWatch {
	m := &memoryWatch{peak: map[string]uint64{}, anon: map[string]uint64{}, pids: map[string]int{}, done: make(chan struct{})}
	m.ended.Add(1)
	go func() {
		defer m.ended.Done()
		t := time.NewTicker(memorySampleEvery)
		defer t.Stop()
		for {
			m.sample(d)
			select {
			case <-m.done:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memoryWatch) sample(d *devCluster) {
	for _, id := range d.ids() {
		pid := d.pid(id)
		if pid == 0 {
			continue
		}
		rss, _ := procStatus(pid, "VmRSS")
		anon, _ := procStatus(pid, "RssAnon")
		m.mu.Lock()
		m.pids[id] = pid
		m.peak[id] = max(m.peak[id], rss)
		m.anon[id] = max(m.anon[id], anon)
		m.mu.Unlock()
	}
}

func (m *memoryWatch) stop() {
	m.once.Do(func() { close(m.done) })
	m.ended.Wait()
}

// footprints reads each node's high-water mark and data directory size.
func (m *memoryWatch) footprints(d *devCluster) []nodeFootprint {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []nodeFootprint
	for _, id := range d.ids() {
		f := nodeFootprint{Node: id, PeakRSSBytes: m.peak[id], PeakAnonBytes: m.anon[id]}
		if pid := m.pids[id]; pid != 0 && d.pid(id) == pid {
			f.HWMBytes, _ = procStatus(pid, "VmHWM")
		}
		if n, err := d.node(id); err == nil {
			f.DataBytes = dirBytes(d.nodeFile(n, "data"))
		}
		out = append(out, f)
	}
	return out
}

// procStatus reads one "kB" field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (uint64, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// dirBytes is the size of the regular files under dir; 0 when it cannot be read.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
