package test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/test/harness"
)

// runJSON runs the urne binary with -o json and decodes its one document into v.
func (p *procCluster) runJSON(v any, args ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append(args, "-o", "json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("urne %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		p.t.Fatalf("urne %s printed no JSON document: %v\n%s", strings.Join(args, " "), err, stdout.Bytes())
	}
}

// TestSystemBackupCommands saves, verifies, schedules and restores backups with the binary
// against real node processes, and restores into a new cluster that reaches the same digest.
func TestSystemBackupCommands(t *testing.T) {
	p := startProcCluster(t, "3")
	ctx := harness.Context(t, 3*time.Minute)
	org := p.client("organizer")
	if _, err := org.CreateElection(ctx, "system-test", "Backups"); err != nil {
		t.Fatal(err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", 200))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatal(err)
	}
	app := p.client("app")
	for i := 1; i <= 20; i++ {
		v := harness.Voters("v", i)[i-1].VoterId
		if _, err := app.Cast(ctx, v, []byte("ballot of "+v)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.urnebak")
	var saved, verified struct {
		Index   uint64 `json:"index"`
		Digest  string `json:"digest"`
		Ballots uint64 `json:"ballots"`
	}
	p.runJSON(&saved, "backup", "save", "--cluster", p.dir, "--out", archive)
	p.runJSON(&verified, "backup", "verify", archive, "--cluster", p.dir)
	if saved.Index == 0 || saved.Digest != verified.Digest || verified.Ballots != 20 {
		t.Fatalf("saved %+v, verified %+v", saved, verified)
	}
	if out, err := p.run("backup", "save", "--cluster", p.dir, "--out", archive); err == nil {
		t.Fatalf("save over an existing archive succeeded:\n%s", out)
	}
	other := filepath.Join(dir, "other.key")
	k, _ := backup.GenerateKey("other")
	if err := backup.WriteKeyFile(other, k); err != nil {
		t.Fatal(err)
	}
	out, err := p.run("backup", "verify", archive, "--key-file", other)
	if err == nil || !strings.Contains(string(out), "wrong backup key") {
		t.Fatalf("verify with another key: %v\n%s", err, out)
	}
	out, err = p.run("backup", "restore", archive, "--cluster", p.dir)
	if err == nil || !strings.Contains(string(out), "running") {
		t.Fatalf("restore over the running cluster without --force: %v\n%s", err, out)
	}
	checkSchedule(t, p, filepath.Join(dir, "scheduled"))
	restored := filepath.Join(dir, "restored")
	p.runJSON(&struct{}{}, "backup", "restore", archive, "--out", restored, "--topology", "1", "--key-file", filepath.Join(p.dir, "backup", "backup.key"))
	r := &procCluster{t: t, bin: p.bin, dir: restored}
	t.Cleanup(func() { _, _ = r.run("dev", "down", "--dir", restored) })
	if out, err := r.run("dev", "up", "--dir", restored); err != nil {
		t.Fatalf("dev up of the restored cluster: %v\n%s", err, out)
	}
	var digests struct {
		Agree bool `json:"agree"`
		Nodes []struct {
			AppliedIndex uint64 `json:"applied_index"`
			Digest       string `json:"digest"`
		} `json:"nodes"`
	}
	r.runJSON(&digests, "operator", "digest", "--cluster", restored)
	if !digests.Agree || digests.Nodes[0].AppliedIndex != saved.Index || digests.Nodes[0].Digest != saved.Digest {
		t.Fatalf("restored cluster %+v, archive index %d digest %s", digests, saved.Index, saved.Digest)
	}
}

// checkSchedule runs three scheduled backups keeping two.
func checkSchedule(t *testing.T, p *procCluster, dir string) {
	t.Helper()
	var r struct {
		Saved   []json.RawMessage `json:"saved"`
		Removed []string          `json:"removed"`
	}
	p.runJSON(&r, "backup", "schedule", "--cluster", p.dir, "--dir", dir, "--every", "100ms", "--count", "3", "--keep", "2")
	left, _ := filepath.Glob(filepath.Join(dir, "*.urnebak"))
	if len(r.Saved) != 3 || len(r.Removed) != 1 || len(left) != 2 {
		t.Fatalf("schedule saved %d, removed %v, left %v", len(r.Saved), r.Removed, left)
	}
	for _, f := range left {
		if info, err := os.Stat(f); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, info.Mode(), err)
		}
	}
}
