package test

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSystemBenchElection runs `urne bench election` on real processes at a small scale: the
// whole election completes, the counted box matches every acknowledged cast, every node's
// memory and data directory were measured, and every node was restarted on its files.
func TestSystemBenchElection(t *testing.T) {
	p := startProcCluster(t, "3")
	const voters = 300
	before, err := p.pids()
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.run("bench", "election", "--cluster", p.dir, "--voters", "300", "--concurrency", "16", "--ballot-size", "256", "-o", "json")
	if err != nil {
		t.Fatalf("bench election: %v\n%s", err, out)
	}
	var r struct {
		Voters      int               `json:"voters"`
		Complete    bool              `json:"complete"`
		Counted     uint64            `json:"counted"`
		Emargements uint64            `json:"emargements"`
		MaxRSS      uint64            `json:"max_rss_bytes"`
		PerBallot   float64           `json:"data_bytes_per_ballot"`
		Restart     float64           `json:"restart_seconds"`
		TermsBegun  map[string]uint64 `json:"terms_begun"`
		Cast        struct {
			Acknowledged int     `json:"acknowledged"`
			DiskWritten  uint64  `json:"disk_written_bytes"`
			DiskPerCast  float64 `json:"disk_bytes_per_cast"`
		} `json:"cast"`
		Nodes []struct {
			Node      string `json:"node"`
			PeakRSS   uint64 `json:"peak_rss_bytes"`
			PeakAnon  uint64 `json:"peak_anon_bytes"`
			DataBytes int64  `json:"data_bytes"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench election -o json: %v\n%s", err, out)
	}
	if !r.Complete || r.Voters != voters || r.Cast.Acknowledged != voters || r.Counted != voters || r.Emargements != voters {
		t.Fatalf("want a complete election of %d ballots, got %s", voters, out)
	}
	if len(r.Nodes) != 3 || r.MaxRSS == 0 || r.PerBallot <= 0 {
		t.Fatalf("want memory and data measured on 3 nodes, got %s", out)
	}
	for _, n := range r.Nodes {
		if n.PeakRSS == 0 || n.PeakAnon == 0 || n.PeakAnon > n.PeakRSS || n.DataBytes == 0 {
			t.Fatalf("node %s was not measured: %s", n.Node, out)
		}
	}
	// Every ballot was synced into the raft logs at least, so the disk under the cluster wrote
	// more than the ballots, where Linux counts that disk's writes.
	if onBlockDevice(p.dir) {
		if r.Cast.DiskWritten < voters*256 || r.Cast.DiskPerCast < 256 {
			t.Fatalf("want the disk's writes during the cast measured, got %s", out)
		}
	} else if r.Cast.DiskWritten != 0 {
		t.Fatalf("disk writes reported for a folder on no block device: %s", out)
	}
	after, err := p.pids()
	if err != nil {
		t.Fatal(err)
	}
	for id, pid := range before {
		if after[id] == 0 || after[id] == pid {
			t.Fatalf("node %s: pid %d before the bench, %d after: it was not restarted", id, pid, after[id])
		}
	}
	for _, phase := range []string{"import", "cast", "close", "count"} {
		if _, ok := r.TermsBegun[phase]; !ok {
			t.Fatalf("want the raft terms begun during the %s, got %s", phase, out)
		}
	}
	if r.Restart <= 0 {
		t.Fatalf("want the restart timed, got %s", out)
	}
}

// onBlockDevice tells whether dir is on a block device whose writes Linux counts.
func onBlockDevice(dir string) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false
	}
	dev := uint64(st.Dev) // not a uint64 on every architecture
	_, err := os.Stat(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(dev), unix.Minor(dev)))
	return err == nil
}
