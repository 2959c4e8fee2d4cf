// Command benchreport turns the results of one `make bench` run (a folder of JSON documents
// and the Go benchmarks' output) into BENCHMARKS.md: the machine, each target of the
// throughput work against what was measured, and every figure with the command behind it.
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/urne-vote/urne/client/workload"
)

//go:embed report.md.tmpl
var reportTemplate string

func main() {
	dir := flag.String("results", ".bench/results", "folder of the run's results")
	out := flag.String("out", "BENCHMARKS.md", "report to write")
	params := flag.String("params", "", "the run's parameters, as make bench was given them")
	flag.Parse()
	r, err := load(os.DirFS(*dir))
	if err == nil {
		r.Machine = thisMachine()
		r.Date = time.Now().UTC().Format(time.DateOnly)
		r.Params = *params
		var page []byte
		if page, err = render(r); err == nil {
			err = os.WriteFile(*out, page, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d results, %d missing)\n", *out, 8-len(r.Missing), len(r.Missing))
	if len(r.Missing) > 0 {
		fmt.Fprintf(os.Stderr, "benchreport: no result for %s: that bench failed or did not run\n", strings.Join(r.Missing, ", "))
		os.Exit(1)
	}
}

// Results are one run's documents, each nil when its bench left none.
type Results struct {
	Date    string
	Params  string
	Machine Machine

	Cast     *Load
	Compare  []CompareRow
	Election *Election
	Login    *Login
	Suite    *Suite
	Failover *Failover
	Restore  *Restore
	GoBench  []GoBench

	Missing []string
}

// Load is `urne bench cast -o json`.
type Load struct {
	Concurrency  int     `json:"concurrency"`
	BallotSize   int     `json:"ballot_size"`
	Seconds      float64 `json:"seconds"`
	Acknowledged int     `json:"acknowledged"`
	PerSecond    float64 `json:"casts_per_second"`
	P50          float64 `json:"p50_ms"`
	P99          float64 `json:"p99_ms"`
	Max          float64 `json:"max_ms"`
	Failed       int     `json:"failed"`
	Unknown      int     `json:"unknown"`
	// DiskWritten and DiskBytesPerCast are what the disk under the cluster wrote during the
	// load; absent (0) from results of builds before they were measured.
	DiskWritten      uint64  `json:"disk_written_bytes"`
	DiskBytesPerCast float64 `json:"disk_bytes_per_cast"`
}

// CompareRow is one system at one concurrency, from test/etcdbench.
type CompareRow struct {
	System    string  `json:"system"`
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Ops       int     `json:"ops"`
	Failed    int     `json:"failed"`
	PerSecond float64 `json:"per_second"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
}

// Election is `urne bench election -o json`.
type Election struct {
	Voters        int     `json:"voters"`
	ImportSeconds float64 `json:"import_seconds"`
	ImportPerSec  float64 `json:"import_voters_per_second"`
	Cast          Load    `json:"cast"`
	CloseSeconds  float64 `json:"close_seconds"`
	Counted       uint64  `json:"counted"`
	Emargements   uint64  `json:"emargements"`
	CountSeconds  float64 `json:"count_seconds"`
	// RestartSeconds is absent (0) from the results of builds before it was measured.
	RestartSeconds float64 `json:"restart_seconds"`
	// TermsBegun is absent from the results of builds before it was counted.
	TermsBegun   map[string]uint64 `json:"terms_begun"`
	TotalSeconds float64           `json:"total_seconds"`
	Nodes        []struct {
		Node      string `json:"node"`
		PeakRSS   uint64 `json:"peak_rss_bytes"`
		HWM       uint64 `json:"hwm_bytes"`
		PeakAnon  uint64 `json:"peak_anon_bytes"`
		DataBytes int64  `json:"data_bytes"`
	} `json:"nodes"`
	MaxRSS    uint64  `json:"max_rss_bytes"`
	PerBallot float64 `json:"data_bytes_per_ballot"`
	Complete  bool    `json:"complete"`
}

// Terms lists the raft terms begun in each phase, in the order of the phases; "" when the
// run did not count them.
func (e *Election) Terms() string {
	var parts []string
	for _, phase := range []string{"import", "cast", "close", "count"} {
		if n, ok := e.TermsBegun[phase]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", phase, n))
		}
	}
	return strings.Join(parts, ", ")
}

// Login is `urne bench login -o json`.
type Login struct {
	Cost   int `json:"cost"`
	Levels []struct {
		Nodes       int     `json:"nodes"`
		Concurrency int     `json:"concurrency"`
		Seconds     float64 `json:"seconds"`
		Logins      int     `json:"logins"`
		PerSecond   float64 `json:"logins_per_second"`
		P50         float64 `json:"p50_ms"`
		P99         float64 `json:"p99_ms"`
		Failed      int     `json:"failed"`
	} `json:"levels"`
}

// Suite is `urne bench suite -o json`.
type Suite struct {
	RSAOps float64 `json:"rsa2048_private_ops_per_second"`
	Cores  int     `json:"cores"`
	Suites []struct {
		Suite     string  `json:"suite"`
		Casts     int     `json:"casts"`
		Seconds   float64 `json:"seconds"`
		PerSecond float64 `json:"casts_per_second"`
		P50       float64 `json:"p50_ms"`
		P99       float64 `json:"p99_ms"`
		Failed    int     `json:"failed"`
		Ratio     float64 `json:"ratio_to_rsa_ops"`
	} `json:"suites"`
}

// Failover is `urne drill failover --mode hard -o json`: each round's time from the kill to
// the first acknowledged write, and the drill's verdict on the acknowledged writes (RPO = 0).
type Failover struct {
	OK        bool   `json:"ok"`
	Verdict   string `json:"verdict"`
	Failovers []struct {
		OldLeader string  `json:"old_leader"`
		NewLeader string  `json:"new_leader"`
		NoLeader  float64 `json:"no_leader_ms"`
		RTO       float64 `json:"rto_ms"`
	} `json:"failovers"`
}

// Kills is the number of leaders killed.
func (f *Failover) Kills() int { return len(f.Failovers) }

// RTOs are the times to the first acknowledged write, in the order of the kills.
func (f *Failover) RTOs() []float64 {
	out := make([]float64, len(f.Failovers))
	for i, r := range f.Failovers {
		out[i] = r.RTO
	}
	return out
}

// Median and P99 of the RTOs (nearest rank); with fewer than 100 kills, P99 is the worst.
func (f *Failover) Median() float64 { return rank(f.RTOs(), 50) }
func (f *Failover) P99() float64    { return rank(f.RTOs(), 99) }
func (f *Failover) Max() float64    { return rank(f.RTOs(), 100) }

// rank is the nearest-rank percentile p of vs, in milliseconds, as the load generator
// computes its own.
func rank(vs []float64, p int) float64 {
	ds := make([]time.Duration, len(vs))
	for i, v := range vs {
		ds[i] = time.Duration(v * float64(time.Millisecond))
	}
	slices.Sort(ds)
	return float64(workload.Percentile(ds, p)) / float64(time.Millisecond)
}

// Restore is `urne bench restore -o json`.
type Restore struct {
	Ballots     int     `json:"ballots"`
	BackupBytes int64   `json:"backup_bytes"`
	Seconds     float64 `json:"restore_seconds"`
	MBPerSecond float64 `json:"restore_mb_per_second"`
	DiskMBPerS  float64 `json:"disk_dsync_mb_per_second"`
	Ratio       float64 `json:"ratio"`
}

// GoBench is one line of `go test -bench -benchmem`.
type GoBench struct {
	Package, Name string
	Iterations    int
	// Metrics by unit: ns/op, B/op, allocs/op and any custom unit (ns/cast, ...).
	Metrics map[string]float64
	Units   []string
}

// files maps each result file to where it is decoded.
func (r *Results) files() map[string]any {
	return map[string]any{
		"cast.json": &r.Cast, "compare.json": &r.Compare, "election.json": &r.Election, "login.json": &r.Login,
		"suite.json": &r.Suite, "failover.json": &r.Failover, "restore.json": &r.Restore,
	}
}

// load reads every result present in dir; an absent one is listed in Missing, a damaged one
// is an error.
func load(dir fs.FS) (*Results, error) {
	r := &Results{}
	files := r.files()
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range files {
			if !yield(name) {
				return
			}
		}
	})
	for _, name := range names {
		raw, err := fs.ReadFile(dir, name)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(raw)) == 0) {
			r.Missing = append(r.Missing, strings.TrimSuffix(name, ".json"))
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, files[name]); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	raw, err := fs.ReadFile(dir, "gobench.txt")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Missing = append(r.Missing, "gobench")
	case err != nil:
		return nil, err
	default:
		r.GoBench = parseGoBench(raw)
	}
	return r, nil
}

// parseGoBench reads the benchmark lines of `go test -bench` output, each under the latest
// "pkg:" line. Lines it does not know are skipped.
func parseGoBench(raw []byte) []GoBench {
	var out []GoBench
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "pkg:" {
			pkg = strings.TrimPrefix(f[1], "github.com/urne-vote/urne/")
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		b := GoBench{Package: pkg, Name: trimProcs(strings.TrimPrefix(f[0], "Benchmark")), Iterations: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.Metrics[f[i+1]] = v
			b.Units = append(b.Units, f[i+1])
		}
		out = append(out, b)
	}
	return out
}

// trimProcs drops the -GOMAXPROCS suffix go test appends to a benchmark's name.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}

// Machine is what the figures were measured on.
type Machine struct {
	CPU      string
	Cores    int
	MemGiB   float64
	Kernel   string
	Go       string
	Platform string
}

func thisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemGiB = kb / (1 << 20)
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	return m
}

// scaleVoters is the size of election the scale targets speak of.
const scaleVoters = 1_000_000

// Target is one goal of the throughput work and what this run measured against it.
type Target struct {
	Name, Goal, Measured string
	// Met is "yes", "no", or "-" when the goal has no threshold or was not measured.
	Met string
}

// Targets evaluates the run against each goal.
func (r *Results) Targets() []Target {
	var ts []Target
	add := func(name, goal string, measured bool, met bool, format string, args ...any) {
		t := Target{Name: name, Goal: goal, Measured: "not measured", Met: "-"}
		if measured {
			t.Measured = fmt.Sprintf(format, args...)
			t.Met = map[bool]string{true: "yes", false: "no"}[met]
		}
		ts = append(ts, t)
	}
	c := r.Cast
	disk := ""
	if ceiling := r.DiskCeiling(); ceiling > 0 {
		disk = fmt.Sprintf("; the disk allows at most %s casts/s at this run's %.1f KB per cast", thousands(ceiling), c.DiskBytesPerCast/1e3)
	}
	add("replication", "≥ 15,000 casts/s for 60 s, 256 voters, p99 < 100 ms, 2+2+1", c != nil,
		c != nil && c.PerSecond >= 15000 && c.P99 < 100 && c.Seconds >= 60 && c.Failed+c.Unknown == 0,
		"%s casts/s for %.0f s, p99 %.1f ms%s", thousands(val(c, func(l *Load) float64 { return l.PerSecond })),
		val(c, func(l *Load) float64 { return l.Seconds }), val(c, func(l *Load) float64 { return l.P99 }), disk)
	ratios, worst := r.CompareRatios()
	add("against etcd", "≥ 3 × etcd's rate at equal or better p99, 16/64/256 clients", len(ratios) > 0, len(ratios) > 0 && worst >= 3,
		"%s", strings.Join(ratios, ", "))
	var rsa float64
	if r.Suite != nil {
		for _, s := range r.Suite.Suites {
			if s.Suite == "rsa" {
				rsa = s.Ratio
			}
		}
	}
	add("full cast path", "RSA suite ≥ 0.8 × RSA-2048 private-key ops/s", r.Suite != nil, rsa >= 0.8, "%.2f", rsa)
	// The scale targets are judged only on an election of a million voters: a smaller run is
	// reported, not judged.
	e := r.Election
	atScale := e != nil && e.Voters >= scaleVoters
	before := len(ts)
	add("import", "1,000,000 voters in < 60 s", e != nil, atScale && e.ImportSeconds < 60,
		"%s voters in %.1f s", thousands(float64(val(e, func(e *Election) float64 { return float64(e.Voters) }))),
		val(e, func(e *Election) float64 { return e.ImportSeconds }))
	add("whole election", "1,000,000 ballots: import, cast all, close, count", e != nil, atScale && e.Complete && e.Counted >= scaleVoters,
		"%s ballots counted, %s", thousands(float64(val(e, func(e *Election) float64 { return float64(e.Counted) }))),
		map[bool]string{true: "complete", false: "incomplete"}[e != nil && e.Complete])
	add("memory", "< 1 GiB resident per node throughout, at 1,000,000 voters", e != nil, atScale && e.MaxRSS > 0 && e.MaxRSS < 1<<30,
		"%.2f GiB at most", float64(val(e, func(e *Election) float64 { return float64(e.MaxRSS) }))/(1<<30))
	if e != nil && !atScale {
		for i := before; i < len(ts); i++ {
			ts[i].Met = "-"
			ts[i].Measured += fmt.Sprintf(" (a run of %s voters: not judged)", thousands(float64(e.Voters)))
		}
	}
	f := r.Failover
	add("failover", "first acknowledged write after a leader SIGKILL: median < 1 s, p99 < 2 s, nothing lost", f != nil,
		f != nil && f.Kills() > 0 && f.Median() < 1000 && f.P99() < 2000 && f.OK,
		"median %.0f ms, p99 %.0f ms over %d kills", val(f, (*Failover).Median), val(f, (*Failover).P99),
		int(val(f, func(f *Failover) float64 { return float64(f.Kills()) })))
	return ts
}

// DiskCeiling is the cast rate at which the cluster's writes would fill this disk's synced
// sequential rate, at the bytes per cast of the replication bench: a bound no CPU saving can
// lift. 0 when either figure is missing.
func (r *Results) DiskCeiling() float64 {
	if r.Cast == nil || r.Restore == nil || r.Cast.DiskBytesPerCast <= 0 {
		return 0
	}
	return r.Restore.DiskMBPerS * 1e6 / r.Cast.DiskBytesPerCast
}

// CompareRatios gives Urne's rate over etcd's at each concurrency, and the lowest of them
// (counted as 0 where Urne's p99 is worse than etcd's).
func (r *Results) CompareRatios() ([]string, float64) {
	var out []string
	worst := math.Inf(1)
	for _, p := range r.ComparePairs() {
		out = append(out, fmt.Sprintf("%.2f at %d", p.Ratio, p.Clients))
		ratio := p.Ratio
		if p.Urne.P99 > p.Etcd.P99 {
			ratio = 0
		}
		worst = math.Min(worst, ratio)
	}
	if len(out) == 0 {
		worst = 0
	}
	return out, worst
}

// ComparePair is etcd and Urne at one concurrency.
type ComparePair struct {
	Clients    int
	Etcd, Urne CompareRow
	Ratio      float64
}

func (r *Results) ComparePairs() []ComparePair {
	byClients := map[int]*ComparePair{}
	var order []int
	for _, row := range r.Compare {
		p := byClients[row.Clients]
		if p == nil {
			p = &ComparePair{Clients: row.Clients}
			byClients[row.Clients] = p
			order = append(order, row.Clients)
		}
		switch row.System {
		case "etcd":
			p.Etcd = row
		case "urne":
			p.Urne = row
		}
	}
	var out []ComparePair
	for _, n := range order {
		p := byClients[n]
		if p.Etcd.PerSecond > 0 && p.Urne.PerSecond > 0 {
			p.Ratio = p.Urne.PerSecond / p.Etcd.PerSecond
			out = append(out, *p)
		}
	}
	return out
}

func val[T any](p *T, f func(*T) float64) float64 {
	if p == nil {
		return 0
	}
	return f(p)
}

// thousands formats a count with comma separators: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && c != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// figure is a custom benchmark metric: a small fraction keeps two decimals (2.65 pages/cast),
// anything else is rounded with thousands separators.
func figure(v float64) string {
	if math.Abs(v) < 100 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return thousands(v)
}

// number is a count or figure of any numeric type the results use, for the template.
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case uint64:
		return float64(n)
	case int64:
		return float64(n)
	case int:
		return float64(n)
	}
	return math.NaN()
}

func render(r *Results) ([]byte, error) {
	t, err := template.New("report").Funcs(template.FuncMap{
		"thousands": func(v any) string { return thousands(number(v)) },
		"mib":       func(b any) string { return fmt.Sprintf("%.0f MiB", number(b)/(1<<20)) },
		"mbytes":    func(b any) float64 { return number(b) / 1e6 },
		"kbytes":    func(b any) float64 { return number(b) / 1e3 },
		"metric": func(b GoBench, unit string) string {
			v, ok := b.Metrics[unit]
			if !ok {
				return ""
			}
			return thousands(v)
		},
		"extra": func(b GoBench) string {
			var parts []string
			for _, u := range b.Units {
				if u != "ns/op" && u != "B/op" && u != "allocs/op" {
					parts = append(parts, figure(b.Metrics[u])+" "+u)
				}
			}
			return strings.Join(parts, ", ")
		},
		"growth": func(l *Login) string {
			if l == nil || len(l.Levels) < 2 || l.Levels[0].PerSecond == 0 {
				return "-"
			}
			last := l.Levels[len(l.Levels)-1]
			return fmt.Sprintf("%.2f×", last.PerSecond/l.Levels[0].PerSecond)
		},
	}).Parse(reportTemplate)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
