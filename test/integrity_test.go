package test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/mailtest"
)

// integrityCluster is a 3-node cluster whose nodes check their integrity every second,
// watch a binary file of their own and mail alerts to a real local SMTP server.
type integrityCluster struct {
	*harness.Cluster
	mail     *mailtest.Server
	binaries map[string]string
}

func newIntegrityCluster(t *testing.T) *integrityCluster {
	t.Helper()
	ic := &integrityCluster{Cluster: harness.Prepare(t, "3"), mail: mailtest.Start(t), binaries: map[string]string{}}
	bins := t.TempDir()
	startWith(t, ic.Cluster, func(cfg *node.Config) {
		path := filepath.Join(bins, cfg.NodeID+"-urne")
		if err := os.WriteFile(path, []byte("urne build 1.0.0\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		ic.binaries[cfg.NodeID] = path
		cfg.BinaryPath = path
		cfg.IntegrityInterval = node.Duration(time.Second)
		cfg.SMTP = node.AlertMailConfig{Server: ic.mail.Addr, From: "urne@example.org", To: []string{"bureau@example.org", "organizers@example.org"}}
	})
	openElection(t, ic.Cluster, 20)
	app := ic.Client("app")
	for i := 1; i <= 5; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(harness.Context(t, 30*time.Second), v, ballotOf(v)); err != nil {
			t.Fatal(err)
		}
	}
	harness.Poll(t, 30*time.Second, func() error {
		for _, id := range ic.Running() {
			if _, _, ok, err := ic.Node(id).FSM().SealedBuild(); !ok || err != nil {
				return fmt.Errorf("%s: no build recorded yet (%v)", id, err)
			}
			if v := metric(t, ic.Cluster, id, "urne_integrity_check_success"); v != 1 {
				return fmt.Errorf("%s: no successful integrity check yet", id)
			}
		}
		return nil
	})
	if n := len(ic.mail.Messages()); n != 0 {
		t.Fatalf("%d alerts mailed before any tampering: %+v", n, ic.mail.Messages())
	}
	return ic
}

// follower returns a running node that does not lead.
func (ic *integrityCluster) follower() string {
	leader := ic.WaitLeader()
	for _, id := range ic.Running() {
		if id != leader {
			return id
		}
	}
	ic.T.Fatal("no follower")
	return ""
}

// tamperStopped stops node id, rewrites its state database with its own key (so every value
// still decrypts), and starts it again.
func (ic *integrityCluster) tamperStopped(id string, fn func(tx *bolt.Tx, kr *keyring.Keyring) error) {
	t := ic.T
	cfg := ic.Config(id)
	ic.Stop(id)
	kek, err := keyring.LoadKEK(keyring.KEKSource{File: cfg.KEK.File})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Open(filepath.Join(cfg.DataDir, "keyring"), kek)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(cfg.DataDir, "fsm.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx, kr) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.BinaryPath = ic.binaries[id]
	cfg.IntegrityInterval = node.Duration(time.Second)
	cfg.SMTP = node.AlertMailConfig{Server: ic.mail.Addr, From: "urne@example.org", To: []string{"bureau@example.org", "organizers@example.org"}}
	if err := ic.TryStartConfig(cfg); err != nil {
		t.Fatalf("restart %s after tampering: %v", id, err)
	}
}

// expectDetected waits for an alert naming every needle, then checks the failure counter of
// kind on reporter.
func (ic *integrityCluster) expectDetected(reporter, kind string, needles ...string) {
	t := ic.T
	t.Helper()
	harness.Poll(t, 30*time.Second, func() error {
		_, err := ic.mail.Find(needles...)
		return err
	})
	m, _ := ic.mail.Find(needles...)
	t.Logf("alert received by %v:\n%s", m.To, m.Data)
	if len(m.To) != 2 || !strings.Contains(m.Data, "Subject: [urne] integrity check failed on node") {
		t.Fatalf("alert %+v", m)
	}
	harness.Poll(t, 10*time.Second, func() error {
		if v := metric(t, ic.Cluster, reporter, fmt.Sprintf(`urne_integrity_failures_total{kind=%q}`, kind)); v < 1 {
			return fmt.Errorf("%s counted %v failures of kind %s", reporter, v, kind)
		}
		if v := metric(t, ic.Cluster, reporter, "urne_integrity_check_success"); v != 0 {
			return fmt.Errorf("%s reports success %v", reporter, v)
		}
		return nil
	})
}

func TestIntegrityDetectsEditedBallot(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	var fingerprint []byte
	ic.tamperStopped(victim, func(tx *bolt.Tx, kr *keyring.Keyring) error {
		box := tx.Bucket([]byte("box"))
		k, _ := box.Cursor().First()
		fingerprint = append([]byte(nil), k...)
		return box.Put(fingerprint, kr.Seal(append([]byte("box/"), fingerprint...), []byte("a ballot stuffed by hand")))
	})
	ic.expectDetected(victim, "ballot_box", "node "+victim, "FAILED ballot_box", fmt.Sprintf("%x", fingerprint))
	ic.expectDetected(ic.WaitLeader(), "replicas", "FAILED replicas: replica "+victim+" diverges")
}

func TestIntegrityDetectsDroppedRegisterEntry(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	ic.tamperStopped(victim, func(tx *bolt.Tx, _ *keyring.Keyring) error {
		return tx.Bucket([]byte("register")).Delete(binary.BigEndian.AppendUint64(nil, 4))
	})
	ic.expectDetected(victim, "register", "node "+victim, "FAILED register", "entry 4", "missing")
}

func TestIntegrityDetectsSwappedBinary(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	if err := os.WriteFile(ic.binaries[victim], []byte("urne build 6.6.6, patched\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	ic.expectDetected(victim, "binary", "node "+victim, "FAILED binary", "the binary on disk has SHA-256")
}

// TestIntegrityDetectsDivergedReplica applies an entry to one running replica behind raft's
// back: the entry raft commits at that index is then skipped there, and the replicas differ.
func TestIntegrityDetectsDivergedReplica(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	f := ic.Node(victim).FSM()
	cmd, err := fsm.NewCommand(fsmpb.CommandType_COMMAND_RECORD_EVENT, &fsmpb.RecordEvent{Action: "forged event", Outcome: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	cmd.StampedAtUnixNano = time.Now().UnixNano()
	data, err := fsm.Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, 10*time.Second, func() error {
		resp, _ := f.Apply(&raft.Log{Index: f.AppliedIndex() + 1, Term: 1, Type: raft.LogCommand, Data: data}).(*fsmpb.Response)
		if resp == nil || resp.Code != fsmpb.ResponseCode_RESPONSE_OK || strings.Contains(resp.Message, "already applied") {
			return fmt.Errorf("raft applied that index first: %v", resp)
		}
		return nil
	})
	ic.expectDetected(ic.WaitLeader(), "replicas", "FAILED replicas: replica "+victim+" diverges")
}
