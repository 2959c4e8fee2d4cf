package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
)

// TestSystemArchiveAndDestruction runs an election to its end on real node processes, seals
// its archive, then destroys its data with the two recorded steps, and proves by trying that
// nothing of it can be read any more: the nodes' old files do not open with their KEK, the
// backups and the archive are gone and their key with them; the certificate verifies.
func TestSystemArchiveAndDestruction(t *testing.T) {
	p := startProcCluster(t, "3")
	ctx := harness.Context(t, 4*time.Minute)
	org := p.client("organizer")
	if _, err := org.CreateElection(ctx, "system-test", "Archive and destruction"); err != nil {
		t.Fatal(err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", 40))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
	app := p.client("app")
	for i := 1; i <= 10; i++ {
		v := harness.Voters("v", i)[i-1].VoterId
		if _, err := app.Cast(ctx, v, []byte("ballot of "+v)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "election.urnearch")
	if out, err := p.run("archive", "create", "--cluster", p.dir, "--out", file); err == nil {
		t.Fatalf("archive of an open election succeeded:\n%s", out)
	}
	if _, err := org.CloseElection(ctx); err != nil {
		t.Fatal(err)
	}

	// The archive: sealed, verified offline, the election archived with its digest.
	var created, verified struct {
		Digest   string `json:"digest"`
		Archived bool   `json:"archived"`
		Manifest struct {
			Phase  string `json:"phase"`
			Counts struct {
				Ballots uint64 `json:"ballots"`
			} `json:"counts"`
			Register struct {
				Entries uint64 `json:"entries"`
			} `json:"register"`
		} `json:"manifest"`
	}
	p.runJSON(&created, "archive", "create", "--cluster", p.dir, "--out", file)
	extracted := filepath.Join(dir, "extracted")
	p.runJSON(&verified, "archive", "verify", file, "--cluster", p.dir, "--extract", extracted)
	if !created.Archived || created.Digest != verified.Digest || verified.Manifest.Counts.Ballots != 10 || verified.Manifest.Register.Entries == 0 {
		t.Fatalf("created %+v, verified %+v", created, verified)
	}
	var register struct {
		Entries uint64 `json:"entries"`
	}
	p.runJSON(&register, "audit", "verify", "--file", filepath.Join(extracted, "register.jsonl"))
	if register.Entries != verified.Manifest.Register.Entries {
		t.Fatalf("audit verify of the archived register: %d entries, manifest %d", register.Entries, verified.Manifest.Register.Entries)
	}
	if st, err := org.GetElection(ctx); err != nil || st.GetPhase().String() != "PHASE_ARCHIVED" {
		t.Fatalf("election after archive create: %v %v", st.GetPhase(), err)
	}

	// Backups the destruction must erase, and a copy of a node's files taken before.
	scheduled := filepath.Join(dir, "scheduled")
	p.runJSON(&struct{}{}, "backup", "schedule", "--cluster", p.dir, "--dir", scheduled, "--every", "100ms", "--count", "1", "--keep", "2")
	export := filepath.Join(dir, "register.jsonl")
	if out, err := p.run("audit", "export", "--cluster", p.dir, "--file", export); err != nil {
		t.Fatalf("audit export: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(export); !strings.Contains(string(b), `"action":"backup"`) {
		t.Fatal("the scheduled backup is not in the register")
	}
	id := p.file().Nodes[0].ID
	cfg, err := node.LoadConfig(cluster.NodeConfigPath(p.dir, id))
	if err != nil {
		t.Fatal(err)
	}
	before := filepath.Join(dir, "before")
	copyFile(t, filepath.Join(cfg.DataDir, "fsm.db"), filepath.Join(before, "fsm.db"))

	// Two steps, two principals; one principal for both is refused.
	if out, err := p.run("destruction", "authorize", "--cluster", p.dir); err == nil {
		t.Fatalf("authorization without a request succeeded:\n%s", out)
	}
	p.runJSON(&struct{}{}, "destruction", "request", "--cluster", p.dir, "--reason", "retention over")
	if out, err := p.run("destruction", "authorize", "--cluster", p.dir, "--role", "operator"); err == nil {
		t.Fatalf("the operator authorized its own request:\n%s", out)
	}
	// A node down at the authorization erases its data when it comes back; the certificate
	// waits for it.
	down := p.file().Nodes[2].ID
	if out, err := p.run("dev", "kill", "--dir", p.dir, "--node", down); err != nil {
		t.Fatalf("dev kill: %v\n%s", err, out)
	}
	p.runJSON(&struct{}{}, "destruction", "authorize", "--cluster", p.dir)
	p.runJSON(&struct{}{}, "destruction", "erase-backups", "--cluster", p.dir, "--backups", scheduled, "--file", file)
	var status struct {
		Complete bool            `json:"complete"`
		Record   json.RawMessage `json:"record"`
	}
	harness.Poll(t, time.Minute, func() error {
		p.runJSON(&status, "destruction", "status", "--cluster", p.dir)
		if n := strings.Count(string(status.Record), `"nodeId"`); n != len(p.file().Nodes) {
			return fmt.Errorf("%d erasures reported: %s", n, status.Record)
		}
		return nil
	})
	if status.Complete {
		t.Fatal("the certificate was issued while a node had not erased its data")
	}
	if out, err := p.run("dev", "start", "--dir", p.dir, "--node", down); err != nil {
		t.Fatalf("dev start: %v\n%s", err, out)
	}
	certDir := filepath.Join(dir, "certificate")
	p.runJSON(&status, "destruction", "status", "--cluster", p.dir, "--wait", "90s", "--out", certDir)
	if !status.Complete {
		out, _ := p.run("destruction", "status", "--cluster", p.dir)
		t.Fatalf("the destruction did not complete:\n%s", out)
	}
	var cert struct {
		Nodes []struct {
			NodeID string   `json:"node_id"`
			Keys   []string `json:"keys"`
		} `json:"nodes"`
		Destroyed []string `json:"destroyed"`
	}
	p.runJSON(&cert, "verify", "destruction", "--certificate", filepath.Join(certDir, "destruction-certificate.json"),
		"--sig", filepath.Join(certDir, "destruction-certificate.sig"), "--receipt-key", filepath.Join(p.dir, cluster.ReceiptPublicKeyFile))
	if len(cert.Nodes) != len(p.file().Nodes)+1 || !strings.Contains(strings.Join(cert.Destroyed, ";"), "voters: 40 records") {
		t.Fatalf("certificate: %+v", cert)
	}
	forged, _ := os.ReadFile(filepath.Join(certDir, "destruction-certificate.json"))
	forged = []byte(strings.Replace(string(forged), "voters: 40", "voters: 41", 1))
	if err := os.WriteFile(filepath.Join(certDir, "forged.json"), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := p.run("verify", "destruction", "--certificate", filepath.Join(certDir, "forged.json"),
		"--sig", filepath.Join(certDir, "destruction-certificate.sig"), "--receipt-key", filepath.Join(p.dir, cluster.ReceiptPublicKeyFile)); err == nil {
		t.Fatalf("a changed certificate verified:\n%s", out)
	}

	// Nothing can be read any more. The node's file from before does not open with the
	// node's keyring under its KEK: the key that sealed it is gone.
	kek, err := keyring.LoadKEK(keyring.KEKSource{File: cfg.KEK.File})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Open(filepath.Join(cfg.DataDir, "keyring"), kek)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := fsm.Open(filepath.Join(before, "fsm.db"), kr, nil); err == nil {
		f.Close()
		t.Fatal("the state database copied before the destruction opens with the node's keys")
	}
	if left, _ := filepath.Glob(filepath.Join(scheduled, "*")); len(left) != 0 {
		t.Fatalf("managed backups left: %v", left)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the archive is still there: %v", err)
	}
	if out, err := p.run("archive", "verify", filepath.Join(before, "fsm.db"), "--cluster", p.dir); err == nil || !strings.Contains(string(out), "backup key") {
		t.Fatalf("the backup key survived: %v\n%s", err, out)
	}
	// A node restarts on what it kept (nothing it needs was under a destroyed key), and the
	// cluster still runs, with the kept records only, its replicas agreeing.
	if out, err := p.run("dev", "kill", "--dir", p.dir, "--node", id); err != nil {
		t.Fatalf("dev kill: %v\n%s", err, out)
	}
	if out, err := p.run("dev", "start", "--dir", p.dir, "--node", id); err != nil {
		t.Fatalf("restart after the erasure: %v\n%s", err, out)
	}
	counts, err := org.Counts(ctx)
	if err != nil || counts.GetVoters() != 0 || counts.GetBallots() != 0 {
		t.Fatalf("counts after destruction: %v %v", counts, err)
	}
	var digests struct {
		Agree bool `json:"agree"`
	}
	harness.Poll(t, time.Minute, func() error {
		p.runJSON(&digests, "operator", "digest", "--cluster", p.dir)
		if !digests.Agree {
			return errors.New("the replicas' digests differ")
		}
		return nil
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
