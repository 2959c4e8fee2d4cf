package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node/storage"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// links are the values that tie a voter to a cast, and the ballots themselves. The state
// machine never stores a ballot next to a voter; the raft log did (a cast command carries the
// session hash, the request id and the inner ballot), until the close compacted it.
type links struct {
	voter  [][]byte // session and challenge hashes, request ids (voter ids are too short to search ciphertext-sized ballots for)
	ballot [][]byte // fingerprints and inner ballots
	// linking are the voter values a ballot was ever written beside (session hashes,
	// request ids): after the close they must be gone from every store.
	linking [][]byte
}

func containsAny(b []byte, needles [][]byte) []byte {
	for _, n := range needles {
		if bytes.Contains(b, n) {
			return n
		}
	}
	return nil
}

func TestNothingLinksAVoterToABallotAfterClose(t *testing.T) {
	lc := startLegalCluster(t)
	ctx := harness.Context(t, 3*time.Minute)
	lc.draft(t)
	must(t, "seal", errOf(lc.bureau.SealElection(ctx)))
	must(t, "issue identifiers", errOf(lc.organizer.IssueIdentifiers(ctx, "")))
	lc.clock.Advance(2 * time.Minute)
	must(t, "open", errOf(lc.bureau.OpenElection(ctx)))

	var l links
	for i, v := range legalVoters[:2] {
		login, err := lc.app.Login(ctx, lc.identifier(t, v.id), v.secret)
		must(t, "login", err)
		must(t, "request code", errOf(lc.app.RequestCode(ctx, login.ChallengeToken, v.phone)))
		s, err := lc.app.VerifyCode(ctx, login.ChallengeToken, lc.code(t, v.phone, 1))
		must(t, "verify code", err)
		envelope, inner := lc.device.seal(t, s.SessionId, s.EnvelopeNonce, "L1")
		requestID := fmt.Sprintf("request-%d-of-a-voter", i)
		must(t, "cast", errOf(lc.app.CastSealed(ctx, requestID, s.SessionToken, "ct", envelope)))
		sessionHash, challengeHash := sha256.Sum256([]byte(s.SessionToken)), sha256.Sum256([]byte(login.ChallengeToken))
		l.voter = append(l.voter, sessionHash[:], challengeHash[:], []byte(requestID))
		l.linking = append(l.linking, sessionHash[:], []byte(requestID))
		fp := sha256.Sum256(inner)
		l.ballot = append(l.ballot, fp[:], inner)
	}
	// A third voter is left halfway: a pending login with a code sent.
	v3 := legalVoters[2]
	pending, err := lc.app.Login(ctx, lc.identifier(t, v3.id), v3.secret)
	must(t, "login", err)
	must(t, "request code", errOf(lc.app.RequestCode(ctx, pending.ChallengeToken, v3.phone)))
	challenge := sha256.Sum256([]byte(pending.ChallengeToken))
	l.voter = append(l.voter, challenge[:])
	l.linking = append(l.linking, challenge[:])

	// Every node also holds a snapshot taken during the vote, which the close must not keep.
	for _, id := range lc.Running() {
		must(t, "snapshot during the vote", lc.Node(id).Raft().Snapshot().Error())
	}

	lc.clock.Advance(24 * time.Hour)
	harness.Poll(t, 30*time.Second, func() error {
		e, err := lc.bureau.GetElection(ctx)
		if err != nil || e.Phase != urnepb.ElectionPhase_PHASE_CLOSED {
			return fmt.Errorf("election %v, %v", e.GetPhase(), err)
		}
		return nil
	})
	nodes := lc.Running()
	harness.Poll(t, 30*time.Second, func() error {
		for _, id := range nodes {
			if !bytes.Contains([]byte(lc.Log(id)), []byte("compacted the raft log at the close")) {
				return fmt.Errorf("%s has not compacted its log yet", id)
			}
		}
		return nil
	})
	// A cast after the compaction is refused without entering the log.
	lateID := sha256.Sum256([]byte("late session"))
	late, _ := lc.device.seal(t, hex.EncodeToString(lateID[:]), make([]byte, ballot.EnvelopeNonceSize), "L1")
	_, err = lc.app.CastSealed(ctx, "request-after-close", "late session", "ct", late)
	wantErr(t, "cast after close", err, client.ErrWrongPhase)
	l.linking = append(l.linking, []byte("request-after-close"))
	l.voter = append(l.voter, []byte("request-after-close"))
	lc.StopAll()
	for _, id := range nodes {
		cfg := lc.Config(id)
		kek, err := keyring.LoadKEK(keyring.KEKSource{File: cfg.KEK.File})
		must(t, "kek", err)
		kr, err := keyring.Open(filepath.Join(cfg.DataDir, "keyring"), kek)
		must(t, "keyring", err)
		checkStateDatabase(t, id, filepath.Join(cfg.DataDir, "fsm.db"), kr, l)
		checkRaftLog(t, id, filepath.Join(cfg.DataDir, "raft.db"), kr, l)
		checkSnapshots(t, id, cfg.DataDir, kr, l)
	}
}

// checkStateDatabase opens every value of every bucket: no sessions are left, no record
// holds a voter value next to a ballot value, and no linking value is left at all.
func checkStateDatabase(t *testing.T, id, path string, kr *keyring.Keyring, l links) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	must(t, "open "+path, err)
	defer func() { _ = db.Close() }()
	records := 0
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if string(name) == "sessions" && b.Stats().KeyN != 0 {
				return fmt.Errorf("%d sessions left after the close", b.Stats().KeyN)
			}
			return b.ForEach(func(k, v []byte) error {
				plain, err := kr.Open([]byte(string(name)+"/"+string(k)), v)
				if err != nil {
					return fmt.Errorf("open %s/%x: %w", name, k, err)
				}
				records++
				record := append(bytes.Clone(k), plain...)
				if n := containsAny(record, l.linking); n != nil {
					return fmt.Errorf("bucket %s key %x still holds %x, written beside a ballot", name, k, n)
				}
				if containsAny(record, l.voter) != nil && containsAny(record, l.ballot) != nil {
					return fmt.Errorf("bucket %s key %x holds a voter and a ballot", name, k)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("%s state database: %v", id, err)
	}
	if records == 0 {
		t.Fatalf("%s state database: nothing read", id)
	}
}

// checkSnapshots reads every retained snapshot, decrypted: no linking value in any.
func checkSnapshots(t *testing.T, id, dataDir string, kr *keyring.Keyring, l links) {
	t.Helper()
	inner, err := raft.NewFileSnapshotStore(filepath.Join(dataDir, "snapshots"), 2, io.Discard)
	must(t, "snapshot store", err)
	store := storage.NewSnapshotStore(inner, kr, nil)
	metas, err := store.List()
	must(t, "list snapshots", err)
	if len(metas) == 0 {
		t.Fatalf("%s has no snapshot after the close", id)
	}
	for _, m := range metas {
		_, rc, err := store.Open(m.ID)
		must(t, "open snapshot", err)
		plain, err := io.ReadAll(rc)
		_ = rc.Close()
		must(t, "read snapshot "+m.ID, err)
		if n := containsAny(plain, l.linking); n != nil {
			t.Fatalf("%s snapshot %s holds %x, which a cast command carried beside its ballot", id, m.ID, n)
		}
	}
}

// checkRaftLog reads what remains of the raft log, decrypted: no authentication step or cast
// command, and no voter or ballot value in any entry.
func checkRaftLog(t *testing.T, id, path string, kr *keyring.Keyring, l links) {
	t.Helper()
	bs, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bolt.Options{Timeout: 5 * time.Second}})
	must(t, "open "+path, err)
	defer func() { _ = bs.Close() }()
	logs := storage.NewLogStore(bs, kr)
	first, err := logs.FirstIndex()
	must(t, "first index", err)
	last, err := logs.LastIndex()
	must(t, "last index", err)
	forbidden := map[fsmpb.CommandType]bool{fsmpb.CommandType_COMMAND_CAST: true, fsmpb.CommandType_COMMAND_RECORD_LOGIN: true,
		fsmpb.CommandType_COMMAND_REQUEST_OTP: true, fsmpb.CommandType_COMMAND_VERIFY_OTP: true}
	for i := first; i <= last && last > 0; i++ {
		var entry raft.Log
		must(t, "read log entry", logs.GetLog(i, &entry))
		if n := containsAny(entry.Data, append(append([][]byte{}, l.voter...), l.ballot...)); n != nil {
			t.Fatalf("%s raft log entry %d holds %x", id, i, n)
		}
		if entry.Type != raft.LogCommand {
			continue
		}
		if c, err := fsm.Decode(entry.Data); err == nil && forbidden[c.Type] {
			t.Fatalf("%s raft log entry %d is a %s command, left after the close", id, i, c.Type)
		}
	}
	t.Logf("%s: raft log holds entries %d to %d after the close", id, first, last)
}
