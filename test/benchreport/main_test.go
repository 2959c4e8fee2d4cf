package main

import (
	"strings"
	"testing"
	"testing/fstest"
)

const goBenchOutput = `goos: linux
pkg: github.com/urne-vote/urne/fsm
BenchmarkApplyCastBatch/entries=1/casts=64-2  	      20	   6961200 ns/op	    108769 ns/cast	         2.648 pages/cast	 1056852 B/op	    6037 allocs/op
PASS
pkg: github.com/urne-vote/urne/keyring
BenchmarkSeal1KiB-2   	  900000	      1300 ns/op	    1152 B/op	       1 allocs/op
ok  	github.com/urne-vote/urne/keyring	2.1s
`

func results() fstest.MapFS {
	return fstest.MapFS{
		"cast.json": {Data: []byte(`{"concurrency":256,"seconds":60.2,"acknowledged":125000,"casts_per_second":2076.4,"p50_ms":120,"p99_ms":211.2,"max_ms":400}`)},
		"compare.json": {Data: []byte(`[{"system":"etcd","clients":16,"per_second":2000,"p99_ms":22},{"system":"urne","clients":16,"per_second":900,"p99_ms":35},
			{"system":"etcd","clients":256,"per_second":5000,"p99_ms":177},{"system":"urne","clients":256,"per_second":16000,"p99_ms":120}]`)},
		"election.json": {Data: []byte(`{"voters":1000000,"import_seconds":598.6,"counted":1000000,"emargements":1000000,"complete":true,
			"terms_begun":{"import":0,"cast":2,"close":0,"count":1},
			"max_rss_bytes":900000000,"data_bytes_per_ballot":3500,"nodes":[{"node":"dc1-a","peak_rss_bytes":900000000,"hwm_bytes":880000000,"data_bytes":3500000000}]}`)},
		"failover.json": {Data: []byte(`{"drill":"failover","ok":true,"verdict":"PASSED","failovers":[{"rto_ms":1100},{"rto_ms":900},{"rto_ms":1050},{"rto_ms":1398}]}`)},
		"gobench.txt":   {Data: []byte(goBenchOutput)},
	}
}

// The replication target names the rate at which the run's disk bytes per cast would fill the
// disk, when both were measured.
func TestReportBoundsTheCastRateByTheDisk(t *testing.T) {
	r := &Results{Cast: &Load{Seconds: 60, PerSecond: 2000, P99: 300, DiskWritten: 9e9, DiskBytesPerCast: 75_000},
		Restore: &Restore{DiskMBPerS: 300}}
	if got := r.DiskCeiling(); got != 4000 {
		t.Fatalf("disk ceiling %.1f casts/s, want 4,000", got)
	}
	want := "2,000 casts/s for 60 s, p99 300.0 ms; the disk allows at most 4,000 casts/s at this run's 75.0 KB per cast"
	if got := r.Targets()[0].Measured; got != want {
		t.Errorf("replication measured as %q, want %q", got, want)
	}
	page, err := render(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"the disk under the cluster wrote 9000 MB, 75.0 KB", "cast rate at 4,000 casts/s"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	r.Restore = nil
	if got := r.DiskCeiling(); got != 0 {
		t.Errorf("a ceiling of %.1f casts/s without the disk's rate", got)
	}
	r.Cast.DiskWritten, r.Cast.DiskBytesPerCast = 0, 0
	if page, err = render(r); err != nil || strings.Contains(string(page), "the disk under the cluster wrote") {
		t.Errorf("the disk's writes reported where none were measured (%v)", err)
	}
}

func TestReportJudgesEachTarget(t *testing.T) {
	r, err := load(results())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Target{}
	for _, tg := range r.Targets() {
		got[tg.Name] = tg
	}
	for name, want := range map[string]string{
		"replication":    "no",  // 2,076/s is under 15,000/s
		"against etcd":   "no",  // 0.45 at 16 clients, even though 3.2 at 256
		"full cast path": "-",   // not measured
		"import":         "no",  // 598.6 s
		"whole election": "yes", // a million counted
		"memory":         "yes", // 0.84 GiB
		"failover":       "no",  // p99 1,398 ms is fine, but the median is 1,050 ms
	} {
		if got[name].Met != want {
			t.Errorf("target %q: met %q, want %q (%+v)", name, got[name].Met, want, got[name])
		}
	}
	if got["replication"].Measured != "2,076 casts/s for 60 s, p99 211.2 ms" {
		t.Errorf("replication measured as %q", got["replication"].Measured)
	}
	if strings.Join(r.Missing, ",") != "login,restore,suite" {
		t.Errorf("missing results %v, want login, restore and suite", r.Missing)
	}
}

func TestScaleTargetsNeedAMillionVoters(t *testing.T) {
	fs := results()
	fs["election.json"] = &fstest.MapFile{Data: []byte(`{"voters":200000,"import_seconds":30,"counted":200000,"emargements":200000,"complete":true,"max_rss_bytes":900000000}`)}
	r, err := load(fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range r.Targets() {
		switch tg.Name {
		case "import", "whole election", "memory":
			if tg.Met != "-" || !strings.Contains(tg.Measured, "200,000 voters: not judged") {
				t.Errorf("target %q judged on 200,000 voters: %+v", tg.Name, tg)
			}
		}
	}
}

func TestEtcdRatioNeedsEqualOrBetterP99(t *testing.T) {
	r := &Results{Compare: []CompareRow{{System: "etcd", Clients: 64, PerSecond: 1000, P99: 50}, {System: "urne", Clients: 64, PerSecond: 4000, P99: 60}}}
	if _, worst := r.CompareRatios(); worst != 0 {
		t.Fatalf("4 × etcd's rate with a worse p99 counted as %.2f, want 0", worst)
	}
	r.Compare[1].P99 = 50
	if _, worst := r.CompareRatios(); worst != 4 {
		t.Fatalf("4 × etcd's rate at equal p99 counted as %.2f, want 4", worst)
	}
}

func TestRenderWritesEveryMeasuredFigure(t *testing.T) {
	r, err := load(results())
	if err != nil {
		t.Fatal(err)
	}
	r.Machine = Machine{CPU: "test CPU", Cores: 2, MemGiB: 24, Kernel: "6.1", Go: "go1.26", Platform: "linux/amd64"}
	r.Date = "2026-11-22"
	page, err := render(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| replication | ≥ 15,000 casts/s",
		"| 256 | 125,000 | 60.2 | 2,076 | 120.0 ms | 211.2 ms |",
		"| 256 | 5,000 | 177.0 ms | 16,000 | 120.0 ms | 3.20 |",
		"| dc1-a | 858 MiB | 839 MiB | not sampled | 3338 MiB |",
		"| leader elections | raft terms begun during each phase: import 0, cast 2, close 0, count 1 |",
		"median 1050 ms, p99 1398 ms, max 1398 ms",
		"(each kill, in ms: 1100, 900, 1050, 1398)",
		"| fsm | ApplyCastBatch/entries=1/casts=64 | 6,961,200 | 1,056,852 | 6,037 | 108,769 ns/cast, 2.65 pages/cast |",
		"| keyring | Seal1KiB | 1,300 | 1,152 | 1 |",
		"Not measured in this run (the bench failed or did not run): `login`, `restore`, `suite`.",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(string(page), "<no value>") || strings.Contains(string(page), "%!") {
		t.Errorf("report has a template slip:\n%s", page)
	}
}

func TestDamagedResultIsAnError(t *testing.T) {
	fs := results()
	fs["cast.json"] = &fstest.MapFile{Data: []byte(`{"casts_per_second": "fast"}`)}
	if _, err := load(fs); err == nil || !strings.Contains(err.Error(), "cast.json") {
		t.Fatalf("a damaged result loaded: %v", err)
	}
}

func FuzzParseGoBench(f *testing.F) {
	f.Add([]byte(goBenchOutput))
	f.Add([]byte("BenchmarkX-2 10 5 ns/op extra"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, b := range parseGoBench(raw) {
			if b.Name == "" && b.Iterations < 0 {
				t.Fatalf("a line without a name or a count parsed: %+v", b)
			}
			for _, u := range b.Units {
				if _, ok := b.Metrics[u]; !ok {
					t.Fatalf("unit %q listed without its figure: %+v", u, b)
				}
			}
		}
	})
}
