package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/drill"
	"github.com/urne-vote/urne/test/harness"
)

// drillArgs keep the real-process drills short: a small rehearsal roll, short pauses.
var drillArgs = []string{"--pool-blocks", "100", "--settle", "300ms"}

// drillResult is the part of a drill report the tests read.
type drillResult struct {
	OK        bool          `json:"ok"`
	Verdict   string        `json:"verdict"`
	RTOMillis float64       `json:"rto_ms"`
	Checks    []drill.Check `json:"checks"`
	Failovers []struct {
		NewLeader string  `json:"new_leader"`
		RTOMillis float64 `json:"rto_ms"`
	} `json:"failovers"`
	DCLoss *struct {
		Automatic bool            `json:"automatic"`
		Promotion json.RawMessage `json:"promotion"`
	} `json:"dc_loss"`
	StoredIndex uint64 `json:"stored_index"`
}

// runDrill runs `urne drill NAME ... -o json`; wantOK says whether it must pass (exit 0).
func (p *procCluster) runDrill(wantOK bool, name string, args ...string) drillResult {
	p.t.Helper()
	all := append(append([]string{"drill", name, "--cluster", p.dir}, drillArgs...), args...)
	out, err := p.run(append(all, "-o", "json")...)
	var r drillResult
	if jerr := json.NewDecoder(bytes.NewReader(lastJSON(out))).Decode(&r); jerr != nil {
		p.t.Fatalf("urne %s: no JSON report (%v, %v):\n%s", strings.Join(all, " "), jerr, err, out)
	}
	if (err == nil) != wantOK || r.OK != wantOK {
		p.t.Fatalf("urne %s: exit %v, ok %v, want ok %v:\n%s", strings.Join(all, " "), err, r.OK, wantOK, out)
	}
	if r.StoredIndex == 0 {
		p.t.Fatalf("the %s report was not stored in the cluster:\n%s", name, out)
	}
	return r
}

// lastJSON returns the JSON document at the end of combined output (narration comes first).
func lastJSON(out []byte) []byte {
	s := string(out)
	if i := strings.LastIndex(s, "\n{\n"); i >= 0 {
		return []byte(s[i+1:])
	}
	if strings.HasPrefix(s, "{") {
		return out
	}
	return nil
}

// TestSystemDrills runs every drill on one live 2+2+1 cluster of real processes, then the
// status, the metrics, and a restore drill of a damaged archive, which must fail.
func TestSystemDrills(t *testing.T) {
	p := startProcCluster(t, "2+2+1")
	graceful := p.runDrill(true, "failover", "--mode", "graceful", "--count", "2")
	if len(graceful.Failovers) != 2 || graceful.Failovers[0].NewLeader == "" {
		t.Fatalf("graceful failovers: %+v", graceful.Failovers)
	}
	hard := p.runDrill(true, "failover", "--mode", "hard")
	if hard.Failovers[0].RTOMillis <= 0 {
		t.Fatalf("hard failover without an RTO: %+v", hard)
	}
	p.runDrill(true, "restore", "--scratch-topology", "1")
	p.runDrill(true, "dc-migration")
	loss := p.runDrill(true, "dc-loss", "--outage", "3s")
	if !loss.DCLoss.Automatic {
		t.Fatalf("2+2+1 needed promote-dc: %+v", loss.DCLoss)
	}
	var status drill.StatusReport
	p.runJSON(&status, "drill", "status", "--cluster", p.dir)
	for _, s := range status.Drills {
		if !s.LastOK || s.Overdue || s.LastSuccess == nil {
			t.Fatalf("status after every drill passed: %+v", status)
		}
	}
	checkDrillMetrics(t, p)
	checkRestoreOfADamagedArchive(t, p)
}

// checkDrillMetrics reads a node's metrics: each drill has a last success time.
func checkDrillMetrics(t *testing.T, p *procCluster) {
	t.Helper()
	resp, err := http.Get("http://" + p.file().Nodes[0].Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, name := range drill.Names {
		line := fmt.Sprintf(`urne_drill_last_success_timestamp_seconds{drill=%q} `, name)
		i := strings.Index(string(body), line)
		if i < 0 || strings.HasPrefix(string(body[i+len(line):]), "0\n") {
			t.Fatalf("metric %s missing or zero", line)
		}
	}
	if !strings.Contains(string(body), "urne_drill_last_rto_seconds{drill=\"failover\"}") {
		t.Fatal("no last RTO metric for the failover drill")
	}
}

// checkRestoreOfADamagedArchive: the restore drill of an archive with one flipped byte fails
// and says why.
func checkRestoreOfADamagedArchive(t *testing.T, p *procCluster) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "a.urnebak")
	if out, err := p.run("backup", "save", "--cluster", p.dir, "--out", archive); err != nil {
		t.Fatalf("backup save: %v\n%s", err, out)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(archive, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := p.runDrill(false, "restore", "--from", archive, "--no-load")
	if !strings.Contains(r.Verdict, "restorable") || !strings.Contains(r.Verdict, "does not authenticate") {
		t.Fatalf("verdict of a damaged archive: %s", r.Verdict)
	}
}

// TestSystemDrillDCLossPromotes22: with 2+2, losing dc1 leaves no quorum; the drill promotes
// dc2 and dc1 comes back as voters.
func TestSystemDrillDCLossPromotes22(t *testing.T) {
	p := startProcCluster(t, "2+2")
	r := p.runDrill(true, "dc-loss", "--outage", "2s")
	if r.DCLoss.Automatic || len(r.DCLoss.Promotion) == 0 || string(r.DCLoss.Promotion) == "null" {
		t.Fatalf("2+2 without promote-dc: %+v", r.DCLoss)
	}
}

// binProcs drives the node processes of a cluster through the urne binary, as an SRE would.
type binProcs struct{ p *procCluster }

func (b binProcs) Running(id string) bool {
	pids, err := b.p.pids()
	return err == nil && pids[id] != 0
}

func (b binProcs) Kill(id string) error { return b.dev("kill", id) }
func (b binProcs) Stop(id string) error { return b.dev("kill", id) }
func (b binProcs) Start(_ context.Context, id string) error {
	return b.dev("start", id)
}

func (b binProcs) dev(verb, id string) error {
	if out, err := b.p.run("dev", verb, "--dir", b.p.dir, "--node", id); err != nil {
		return fmt.Errorf("dev %s %s: %v\n%s", verb, id, err, out)
	}
	return nil
}

// drillEnv opens a drill environment on p with test hooks.
func drillEnv(t *testing.T, p *procCluster, hooks drill.Hooks) *drill.Env {
	t.Helper()
	e, err := drill.NewEnv(p.dir, binProcs{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	e.Hooks, e.Logf = hooks, t.Logf
	return e
}

func failedCheck(r *drill.Report, name string) (drill.Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name && !c.OK {
			return c, true
		}
	}
	return drill.Check{}, false
}

var quick = drill.Options{PoolBlocks: 50, Settle: 300 * time.Millisecond}

// TestSystemFailoverDrillNoticesALostBallot: while the killed leader is down, one ballot is
// removed from its database with its own key. The drill must fail and name the node.
func TestSystemFailoverDrillNoticesALostBallot(t *testing.T) {
	p := startProcCluster(t, "3")
	var tampered string
	e := drillEnv(t, p, drill.Hooks{NodeStopped: func(_ context.Context, id string) error {
		tampered = id
		return loseOneBallot(t, p.dir, id)
	}})
	r := e.Failover(harness.Context(t, 3*time.Minute), drill.FailoverOptions{Options: quick, Mode: drill.ModeHard})
	c, failed := failedCheck(r, "rpo-zero")
	if r.OK || !failed || !strings.Contains(c.Detail, tampered) {
		t.Fatalf("the drill missed the ballot %s lost: %s", tampered, r.Verdict)
	}
	if r.StoredIndex == 0 {
		t.Fatalf("the failed report was not stored: %s", r.StoreError)
	}
}

// TestSystemDrillsNoticeFalseClaims: a migration whose history claims a write no node has,
// and a datacenter loss after which a returning node lost a ballot, both fail, saying so.
func TestSystemDrillsNoticeFalseClaims(t *testing.T) {
	p := startProcCluster(t, "2+2+1")
	ctx := harness.Context(t, 3*time.Minute)
	ghost := drillEnv(t, p, drill.Hooks{BeforeChecks: func(_ context.Context, h *workload.History) error {
		ballot := make([]byte, 32)
		_, _ = rand.Read(ballot)
		fp := sha256.Sum256(ballot)
		now := time.Now()
		h.Record(workload.Op{VoterID: "ghost-voter", RequestID: "ghost", Start: now, End: now, Outcome: workload.OutcomeOK,
			Fingerprint: fp[:], BallotFingerprint: fp[:], Attempts: 1})
		return nil
	}})
	r := ghost.Migration(ctx, drill.MigrationOptions{Options: quick})
	if c, failed := failedCheck(r, "rpo-zero"); r.OK || !failed || !strings.Contains(c.Detail, "ghost-voter") {
		t.Fatalf("the migration drill missed an acknowledged write present nowhere: %s", r.Verdict)
	}
	lossy := drillEnv(t, p, drill.Hooks{NodeStopped: func(_ context.Context, id string) error {
		if id != "dc1-b" {
			return nil
		}
		return loseOneBallot(t, p.dir, id)
	}})
	r = lossy.DCLoss(ctx, drill.DCLossOptions{Options: quick, Outage: 2 * time.Second})
	if c, failed := failedCheck(r, "rpo-zero"); r.OK || !failed || !strings.Contains(c.Detail, "dc1-b") {
		t.Fatalf("the dc-loss drill missed the ballot dc1-b lost: %s", r.Verdict)
	}
}
