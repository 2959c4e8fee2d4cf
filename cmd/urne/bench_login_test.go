package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	benchBinOnce sync.Once
	benchBin     string
	benchBinErr  error
)

// TestMain removes the urne binary this run built.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchBin != "" {
		_ = os.RemoveAll(filepath.Dir(benchBin))
	}
	os.Exit(code)
}

// urneBinary returns the urne binary the bench clusters' nodes run: URNE_BIN when set (make
// test sets it), else one built once for this test run.
func urneBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("URNE_BIN"); bin != "" {
		return bin
	}
	benchBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "urne-bench-bin-")
		if err != nil {
			benchBinErr = err
			return
		}
		benchBin = filepath.Join(dir, "urne")
		if out, err := exec.Command("go", "build", "-o", benchBin, ".").CombinedOutput(); err != nil {
			benchBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if benchBinErr != nil {
		t.Fatal(benchBinErr)
	}
	return benchBin
}

// stoppedCluster fails the test when a node of the bench cluster in dir still runs.
func stoppedCluster(t *testing.T, dir string) {
	t.Helper()
	d, err := openDevCluster(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range d.ids() {
		if pid := d.pid(id); pid != 0 {
			_, _ = d.stopAll(stopGrace)
			t.Fatalf("node %s (pid %d) still runs after the bench", id, pid)
		}
	}
}

func TestBenchLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process cluster: skipped with -short")
	}
	bin := urneBinary(t)
	dir := filepath.Join(t.TempDir(), "bench")
	stdout, stderr, code := runCLI(t, "bench", "login", "--dir", dir, "--urne-binary", bin, "--cost", "4",
		"--voters", "6", "--nodes", "1,5", "--concurrency", "4", "--duration", "1s", "-o", "json")
	if code != 0 {
		t.Fatalf("bench login exited %d: %s", code, stderr)
	}
	stoppedCluster(t, dir)
	var r loginReport
	decodeOne(t, stdout, &r)
	if r.Bench != "login" || r.Cost != 4 || r.CheckedOn != "receiving node" || len(r.Levels) != 2 {
		t.Fatalf("report: %+v", r)
	}
	for i, want := range []int{1, 5} {
		l := r.Levels[i]
		if l.Nodes != want || len(l.NodeIDs) != want || l.Logins == 0 || l.Failed != 0 || l.PerSecond <= 0 || l.P50Millis <= 0 {
			t.Fatalf("level %d: %+v", i, l)
		}
	}
	if !strings.Contains(stdout, `"logins_per_second"`) {
		t.Fatalf("no logins_per_second in %s", stdout)
	}
}

func TestBenchLoginRefusesBadNodes(t *testing.T) {
	for _, nodes := range []string{"0", "1,x", ""} {
		_, stderr, code := runCLI(t, "bench", "login", "--dir", t.TempDir(), "--nodes", nodes)
		if code == 0 || !strings.Contains(stderr, "--nodes") {
			t.Fatalf("--nodes %q exited %d: %s", nodes, code, stderr)
		}
	}
}

func FuzzBenchSinks(f *testing.F) {
	f.Add(`{"from":"Urne","to":"+33600000001","text":"Code de vote bench : 123456 (valable 5 min, usage unique)"}`)
	f.Add("Votre identifiant pour le vote « bench » est : ABCDEFGH2345\n")
	f.Add(`{"to":""}`)
	f.Fuzz(func(t *testing.T, in string) {
		if id := identifierIn(in); id != "" && len(id) != 12 {
			t.Fatalf("identifier %q", id)
		}
		to, code, err := parseSMS(strings.NewReader(in))
		if err == nil && to == "" {
			t.Fatal("a text without a recipient was accepted")
		}
		if code != "" && len(code) != 6 {
			t.Fatalf("code %q", code)
		}
	})
}
