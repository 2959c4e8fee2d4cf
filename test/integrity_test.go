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
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/mailtest"
	"github.com/urne-vote/urne/transport/urnepb"
)

// integrityCluster is a 3-node cluster whose nodes check their integrity every second and
// watch a binary file of their own, running a sealed, open election whose bureau and
// organizers get the outbox's emails from a real local SMTP server.
type integrityCluster struct {
	*harness.Cluster
	mail     *mailtest.Server
	binaries map[string]string
	edit     func(cfg *node.Config)
}

// Recipients of the alerts: a bureau member and an organizer.
const (
	bureauEmail    = "bureau@example.org"
	organizerEmail = "organizers@example.org"
)

func newIntegrityCluster(t *testing.T) *integrityCluster {
	t.Helper()
	ic := &integrityCluster{Cluster: harness.Prepare(t, "3"), mail: mailtest.Start(t), binaries: map[string]string{}}
	bins := t.TempDir()
	ic.edit = func(cfg *node.Config) {
		path := filepath.Join(bins, cfg.NodeID+"-urne")
		if _, err := os.Stat(path); err != nil {
			if err := os.WriteFile(path, []byte("urne build 1.0.0\n"), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		ic.binaries[cfg.NodeID] = path
		cfg.BinaryPath = path
		cfg.IntegrityInterval = node.Duration(time.Second)
		cfg.Delivery = node.DeliveryConfig{Email: []node.SMTPConfig{{Addr: ic.mail.Addr, From: "urne@example.org", TLS: node.SMTPPlain}}}
	}
	startWith(t, ic.Cluster, ic.edit)
	sealAndOpen(t, ic.Cluster, 20)
	app := ic.Client("app")
	for i := 1; i <= 5; i++ {
		v := fmt.Sprintf("v%06d", i)
		if _, err := app.Cast(harness.Context(t, 30*time.Second), v, ballotOf(v)); err != nil {
			t.Fatal(err)
		}
	}
	harness.Poll(t, 30*time.Second, func() error {
		for _, id := range ic.Running() {
			if v := metric(t, ic.Cluster, id, "urne_integrity_check_success"); v != 1 {
				return fmt.Errorf("%s: no successful integrity check yet", id)
			}
			for _, kind := range []string{"register", "seal", "ballot_box", "binary", "replicas"} {
				if v := metric(t, ic.Cluster, id, fmt.Sprintf(`urne_integrity_check_duration_seconds_count{kind=%q}`, kind)); v < 1 {
					return fmt.Errorf("%s has not timed the %s part of its check", id, kind)
				}
			}
		}
		return nil
	})
	if _, err := ic.mail.Find("[urne]"); err == nil {
		t.Fatalf("alerts mailed before any tampering: %+v", ic.mail.Messages())
	}
	return ic
}

// sealAndOpen runs a test election with a bureau member and an organizer to tell, sealed
// before it opens.
func sealAndOpen(t *testing.T, c *harness.Cluster, voters int) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Test election"); err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err := org.ConfigureElection(ctx, &urnepb.ElectionConfig{Organizer: "Test organizer",
		Bureau:          []*urnepb.BureauMember{{Name: "Ada", Email: bureauEmail, Function: "president"}},
		OrganizerEmails: []string{organizerEmail}})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice(harness.Voters("v", voters))); err != nil {
		t.Fatalf("import: %v", err)
	}
	if _, err := org.SealElection(ctx); err != nil {
		t.Fatalf("seal: %v", err)
	}
	if _, err := org.OpenElection(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
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
	ic.edit(&cfg)
	if err := ic.TryStartConfig(cfg); err != nil {
		t.Fatalf("restart %s after tampering: %v", id, err)
	}
}

// expectDetected waits for the alert naming every needle, mailed through the outbox to the
// bureau member and the organizer, then checks the failure counter of kind on reporter.
func (ic *integrityCluster) expectDetected(reporter, kind string, needles ...string) {
	t := ic.T
	t.Helper()
	needles = append([]string{"Subject: [urne] Alerte, vote test-election : integrity check, node " + reporter}, needles...)
	for _, to := range []string{bureauEmail, organizerEmail} {
		harness.Poll(t, 30*time.Second, func() error {
			m, err := ic.mail.Find(append([]string{"To: " + to}, needles...)...)
			if err == nil && (len(m.To) != 1 || m.To[0] != to) {
				return fmt.Errorf("alert sent to %v", m.To)
			}
			return err
		})
	}
	m, _ := ic.mail.Find(needles...)
	t.Logf("alert received by %v:\n%s", m.To, m.Data)
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

// TestIntegrityDetectsEditedVoter rewrites, with the node's key, a voter's name under the seal:
// the record decrypts cleanly, and the recomputed seal no longer matches.
func TestIntegrityDetectsEditedVoter(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	ic.tamperStopped(victim, func(tx *bolt.Tx, kr *keyring.Keyring) error {
		voters := tx.Bucket([]byte("voters"))
		k, sealed := voters.Cursor().First()
		k = append([]byte(nil), k...)
		aad := append([]byte("voters/"), k...)
		plain, err := kr.Open(aad, sealed)
		if err != nil {
			return err
		}
		v := &fsmpb.VoterRecord{}
		if err := proto.Unmarshal(plain, v); err != nil {
			return err
		}
		v.Name = "Someone Else"
		b, err := proto.Marshal(v)
		if err != nil {
			return err
		}
		return voters.Put(k, kr.Seal(aad, b))
	})
	ic.expectDetected(victim, "seal", "FAILED seal: node "+victim+": the configuration, scrutins, lists and roll hash to")
	ic.expectDetected(ic.WaitLeader(), "replicas", "FAILED replicas: replica "+victim+" diverges")
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

// TestSealedChangesNotified: a key rotation and a membership change during the sealed
// election are mailed, through the outbox, to the bureau member and the organizer.
func TestSealedChangesNotified(t *testing.T) {
	ic := newIntegrityCluster(t)
	ctx := harness.Context(t, time.Minute)
	op := ic.Client("operator")
	victim := ic.follower()
	if _, err := op.RotateKey(ctx, ic.GRPC(victim)); err != nil {
		t.Fatal(err)
	}
	if err := op.RemoveServer(ctx, victim); err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{
		"Subject: [urne] Changement, vote test-election : key rotation, keyring of node " + victim,
		"Subject: [urne] Changement, vote test-election : membership change, raft configuration",
	} {
		for _, to := range []string{bureauEmail, organizerEmail} {
			harness.Poll(t, 30*time.Second, func() error {
				_, err := ic.mail.Find("To: "+to, needle, "pendant que le vote est ouvert")
				return err
			})
		}
	}
}

// TestRestoreNotified: a node started from a restored data directory (the mark a seeded
// directory holds) records the restore at its next check; the first node of the bootstrap
// list has it mailed to the bureau member and the organizer, and the mark goes.
func TestRestoreNotified(t *testing.T) {
	ic := newIntegrityCluster(t)
	first := ic.File.Nodes[0].ID
	for _, n := range ic.File.Nodes {
		first = min(first, n.ID)
	}
	cfg := ic.Config(first)
	ic.Stop(first)
	mark := filepath.Join(cfg.DataDir, "restored")
	if err := os.WriteFile(mark, []byte("42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ic.edit(&cfg)
	if err := ic.TryStartConfig(cfg); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{bureauEmail, organizerEmail} {
		harness.Poll(t, 30*time.Second, func() error {
			_, err := ic.mail.Find("To: "+to, "Subject: [urne] Changement, vote test-election : restore, node "+first,
				"state restored from a backup at index 42")
			return err
		})
	}
	harness.Poll(t, 10*time.Second, func() error {
		if _, err := os.Stat(mark); err == nil {
			return fmt.Errorf("the restore mark of %s is still there", first)
		}
		return nil
	})
}

// TestConfigurationChangeNotified: a node restarted with another configuration records the
// change at its next check, and the bureau member and the organizer are told.
func TestConfigurationChangeNotified(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	cfg := ic.Config(victim)
	ic.Stop(victim)
	ic.edit(&cfg)
	cfg.TimestampInterval = node.Duration(time.Hour)
	if err := ic.TryStartConfig(cfg); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{bureauEmail, organizerEmail} {
		harness.Poll(t, 30*time.Second, func() error {
			_, err := ic.mail.Find("To: "+to, "Subject: [urne] Changement, vote test-election : change configuration, node "+victim,
				"configuration sha256 ")
			return err
		})
	}
}
