package main

import (
	"path/filepath"
	"testing"
)

func TestBenchSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process cluster: skipped with -short")
	}
	bin := urneBinary(t)
	dir := filepath.Join(t.TempDir(), "bench")
	stdout, stderr, code := runCLI(t, "bench", "suite", "--dir", dir, "--urne-binary", bin,
		"--voters", "8", "--concurrency", "4", "--duration", "5s", "--rsa-duration", "200ms", "-o", "json")
	if code != 0 {
		t.Fatalf("bench suite exited %d: %s", code, stderr)
	}
	stoppedCluster(t, dir)
	var r suiteReport
	decodeOne(t, stdout, &r)
	if r.Bench != "suite" || r.RSAOpsPerSec <= 0 || len(r.RSAMeasures) != 2 || r.Cores < 1 || len(r.Nodes) != 5 || r.OpenedOn != "receiving node" || len(r.Suites) != 2 {
		t.Fatalf("report: %+v", r)
	}
	for i, want := range []string{"rsa", "hpke"} {
		s := r.Suites[i]
		if s.Suite != want || s.Casts != 8 || s.Failed != 0 || s.PerSecond <= 0 || s.RatioToRSAOps <= 0 || !s.VotersExhausted {
			t.Fatalf("suite %d: %+v", i, s)
		}
	}
}
