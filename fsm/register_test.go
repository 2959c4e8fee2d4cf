package fsm

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/tsa/tsatest"
)

func (h *harness) entries() []*audit.Entry {
	h.t.Helper()
	var out []*audit.Entry
	if err := h.f.RegisterEntries(1, func(e *audit.Entry) error { out = append(out, e); return nil }); err != nil {
		h.t.Fatal(err)
	}
	return out
}

const (
	typeStamp = fsmpb.CommandType_COMMAND_REGISTER_STAMP
	typeBuild = fsmpb.CommandType_COMMAND_RECORD_BUILD
)

func TestEveryCommandIsRecorded(t *testing.T) {
	h := newHarness(t)
	h.apply(typeOpen, &fsmpb.Transition{}) // refused: no election yet
	h.openElection("alice", "bob")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	h.apply(typeCast, cast("r2", "bob", "ballot-A")) // refused: duplicate ballot
	h.last++
	h.applyLog(commandLog(h.last, []byte{0xff, 0x01})) // garbage
	h.mustApply(typeNoop, nil)
	entries := h.entries()
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+"="+strings.SplitN(e.Outcome, ":", 2)[0])
	}
	want := "open election=refused create election=ok import voters=ok open election=ok cast=ok cast=refused invalid command=refused no-op=ok"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("register holds\n%s\nwant\n%s", got, want)
	}
	rep, err := h.f.VerifyRegister(nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != uint64(len(entries)) || entries[3].RaftIndex != 4 || entries[3].Time != stampTime(4).UnixNano() {
		t.Fatalf("report %+v, entry %+v", rep, entries[3])
	}
}

// TestCastEntriesNameNoVoterNorBallot is invariant 5 for the register: nothing in a cast's
// entry, accepted or refused, names the voter, the request or the ballot.
func TestCastEntriesNameNoVoterNorBallot(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice-7731", "bob-8812")
	c := command(t, typeCast, cast("request-5521", "alice-7731", "ballot-XYZ"), h.last+1)
	c.Actor = &fsmpb.Actor{Principal: "client:app", Ip: "192.0.2.44"}
	h.last++
	wantCode(t, h.applyLog(commandLog(h.last, encode(t, c))), nil)
	h.apply(typeCast, cast("request-6632", "bob-8812", "ballot-XYZ")) // duplicate: the refusal message names the fingerprint
	fp := sha256.Sum256([]byte("ballot-XYZ"))
	for _, e := range h.entries() {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range [][]byte{[]byte("alice-7731"), []byte("bob-8812"), []byte("request-"), []byte("ballot-XYZ"),
			fp[:], []byte(hex.EncodeToString(fp[:])), []byte("192.0.2.44")} {
			if bytes.Contains(b, secret) {
				t.Fatalf("entry %d (%s) holds %q", e.Seq, e.Action, secret)
			}
		}
	}
}

func TestActorAndConnectionRecorded(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	c := command(t, typeClose, &fsmpb.Transition{}, h.last+1)
	c.Actor = &fsmpb.Actor{Principal: "client:organizer", Ip: "192.0.2.9"}
	h.last++
	wantCode(t, h.applyLog(commandLog(h.last, encode(t, c))), nil)
	entries := h.entries()
	e := entries[len(entries)-1]
	if e.Actor != "client:organizer" || e.Connection == nil || e.Connection.IP != "192.0.2.9" ||
		e.Connection.Retention != audit.RetentionLogs || len(e.Connection.Salt) == 0 {
		t.Fatalf("entry %+v connection %+v", e, e.Connection)
	}
	if entries[0].Actor != actorSystem {
		t.Fatalf("a command without caller is recorded as %q", entries[0].Actor)
	}
}

func TestRegisterStamp(t *testing.T) {
	a := tsatest.NewAuthority(t, "Test TSA")
	h := newHarness(t)
	h.openElection("alice")
	seq, head, _, err := h.f.RegisterHead()
	if err != nil || seq != 3 {
		t.Fatalf("head %d, %v", seq, err)
	}
	wantCode(t, h.apply(typeStamp, &fsmpb.RegisterStamp{Seq: seq, Head: head[:], Authority: "Test TSA", Token: a.Token(t, head[:])}), nil)
	other := sha256.Sum256([]byte("x"))
	wantCode(t, h.apply(typeStamp, &fsmpb.RegisterStamp{Seq: 2, Head: other[:], Authority: "Test TSA", Token: a.Token(t, other[:])}), ErrInvalid)
	wantCode(t, h.apply(typeStamp, &fsmpb.RegisterStamp{Seq: 99, Head: head[:], Authority: "Test TSA", Token: []byte{1}}), ErrInvalid)
	entries := h.entries()
	if s := entries[3].Stamp; s == nil || s.Seq != 3 || s.Head != head {
		t.Fatalf("stamp entry %+v", entries[3])
	}
	if entries[4].Stamp != nil || !strings.HasPrefix(entries[4].Outcome, "refused") {
		t.Fatalf("a refused stamp was stored: %+v", entries[4])
	}
	rep, err := h.f.VerifyRegister([]*x509.Certificate{a.Cert})
	if err != nil || len(rep.Stamps) != 1 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if _, err := h.f.VerifyRegister([]*x509.Certificate{tsatest.NewAuthority(t, "Other").Cert}); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("a token of an untrusted authority passed: %v", err)
	}
	// A part that begins with the stamp checks it against the entry it stamps, before the part.
	if rep, _, err := h.f.VerifyRegisterPart([]*x509.Certificate{a.Cert}, 4, 1); err != nil || len(rep.Stamps) != 1 || rep.Stamps[0].StampedSeq != 3 {
		t.Fatalf("part from the stamp: %+v, %v", rep, err)
	}
	if _, _, err := h.f.VerifyRegisterPart([]*x509.Certificate{tsatest.NewAuthority(t, "Other").Cert}, 4, 1); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("a part passed a token of an untrusted authority: %v", err)
	}
}

func TestRecordBuildKeepsTheFirst(t *testing.T) {
	h := newHarness(t)
	first, second := sha256.Sum256([]byte("v1")), sha256.Sum256([]byte("v2"))
	wantCode(t, h.apply(typeBuild, &fsmpb.RecordBuild{Sha256: first[:], Version: "v1"}), nil)
	wantCode(t, h.apply(typeBuild, &fsmpb.RecordBuild{Sha256: first[:], Version: "v1"}), nil)
	wantCode(t, h.apply(typeBuild, &fsmpb.RecordBuild{Sha256: second[:], Version: "v2"}), ErrInvalid)
	d, v, ok, err := h.f.SealedBuild()
	if err != nil || !ok || !bytes.Equal(d, first[:]) || v != "v1" {
		t.Fatalf("sealed build %x %q %v %v", d, v, ok, err)
	}
}

// tamper rewrites the database file of h while it is closed, with h's key, as an intruder
// holding the key would; then reopens it.
func (h *harness) tamper(s Sealer, fn func(tx *bolt.Tx) error) {
	h.t.Helper()
	if err := h.f.Close(); err != nil {
		h.t.Fatal(err)
	}
	db, err := bolt.Open(h.path, 0o600, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		h.t.Fatal(err)
	}
	db.Close()
	f, err := open(h.path, s, nil, true)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { f.Close() })
	h.f = f
}

func TestVerifyRegisterFindsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(tx *bolt.Tx, s Sealer) error
		badSeq uint64
		// everyPart: every part finds it, since every part checks the head record.
		everyPart bool
	}{
		{"dropped entry", func(tx *bolt.Tx, _ Sealer) error { return tx.Bucket(bucketRegister).Delete(registerKey(3)) }, 3, false},
		{"dropped last entry", func(tx *bolt.Tx, _ Sealer) error { return tx.Bucket(bucketRegister).Delete(registerKey(5)) }, 5, true},
		{"edited entry", func(tx *bolt.Tx, s Sealer) error {
			e, err := readRegisterEntry(tx, s, 2)
			if err != nil {
				return err
			}
			e.Detail = "1 imported or rectified, 0 unchanged, 1 on the roll"
			b, _ := e.MarshalBinary()
			return putSealed(tx, s, bucketRegister, registerKey(2), b)
		}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := h.f.sealer
			h.openElection("alice", "bob")
			h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
			h.mustApply(typeCast, cast("r2", "bob", "ballot-B"))
			h.tamper(s, func(tx *bolt.Tx) error { return tt.tamper(tx, s) })
			_, err := h.f.VerifyRegister(nil)
			var bad *audit.BadEntryError
			if !errors.As(err, &bad) || bad.Seq != tt.badSeq {
				t.Fatalf("got %v, want entry %d named", err, tt.badSeq)
			}
			// Checked one entry at a time, the parts name the same entry, and only it.
			named, passed := map[uint64]bool{}, 0
			for from := uint64(1); from <= 6; from++ {
				_, _, err := h.f.VerifyRegisterPart(nil, from, 1)
				if errors.As(err, &bad) {
					named[bad.Seq] = true
				} else if err != nil {
					t.Fatalf("part from %d: %v", from, err)
				} else {
					passed++
				}
			}
			if len(named) != 1 || !named[tt.badSeq] || (tt.everyPart && passed > 0) {
				t.Fatalf("the parts named entries %v (%d passed), want %d", named, passed, tt.badSeq)
			}
		})
	}
}

// TestRegisterPartsFollowOneAnother: parts from entry 1 on check every entry once, each
// from where the last ended, and the one that reaches the end sends the next back to 1.
func TestRegisterPartsFollowOneAnother(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob", "carol")
	for i, v := range []string{"alice", "bob", "carol"} {
		h.mustApply(typeCast, cast(fmt.Sprintf("r%d", i), v, "ballot of "+v))
	}
	whole, err := h.f.VerifyRegister(nil)
	if err != nil || whole.First != 1 || whole.Entries != 6 {
		t.Fatalf("whole register: %+v %v", whole, err)
	}
	from := uint64(1)
	for _, want := range []struct{ first, last, next uint64 }{{1, 4, 5}, {5, 6, 1}, {1, 4, 5}} {
		rep, next, err := h.f.VerifyRegisterPart(nil, from, 4)
		if err != nil || rep.First != want.first || rep.Entries != want.last || next != want.next || (next == 1 && rep.Head != whole.Head) {
			t.Fatalf("part from %d: %+v, next %d, %v; want entries %d to %d, next %d", from, rep, next, err, want.first, want.last, want.next)
		}
		from = next
	}
	// A register restored to an earlier state is checked from its first entry again.
	if rep, next, err := h.f.VerifyRegisterPart(nil, 40, 4); err != nil || rep.First != 1 || next != 5 {
		t.Fatalf("part from beyond the end: %+v, next %d, %v", rep, next, err)
	}
}

func TestCheckBoxFindsEditedBallot(t *testing.T) {
	h := newHarness(t)
	s := h.f.sealer
	h.openElection("alice", "bob")
	h.mustApply(typeCast, cast("r1", "alice", "ballot-A"))
	h.mustApply(typeCast, cast("r2", "bob", "ballot-B"))
	if c, err := h.f.CheckBox(0, 0); err != nil || c.Ballots != 2 {
		t.Fatalf("honest box: %+v %v", c, err)
	}
	fp := sha256.Sum256([]byte("ballot-B"))
	h.tamper(s, func(tx *bolt.Tx) error { return putSealed(tx, s, bucketBox, fp[:], []byte("ballot-C")) })
	if _, err := h.f.CheckBox(0, 0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), hex.EncodeToString(fp[:])) {
		t.Fatalf("edited ballot: %v", err)
	}
}

// TestSnapshotWithoutRegisterRestores restores the snapshot stream of the version before the
// register: the register starts empty and grows from there.
func TestSnapshotWithoutRegisterRestores(t *testing.T) {
	raw, err := os.ReadFile("testdata/snapshot_v1_no_register.hex")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	h.last = h.f.AppliedIndex()
	h.mustApply(typeNoop, nil)
	if e := h.entries(); len(e) != 1 || e[0].Seq != 1 {
		t.Fatalf("register after restore: %+v", e)
	}
}

func TestMembershipChangesRecorded(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	h.last++
	conf := raft.Configuration{Servers: []raft.Server{{ID: "dc1-a", Suffrage: raft.Voter}, {ID: "dc2-a", Suffrage: raft.Nonvoter}}}
	h.f.Apply(&raft.Log{Index: h.last, Term: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(conf), AppendedAt: time.Now()})
	h.last++
	h.f.Apply(&raft.Log{Index: h.last, Term: 1, Type: raft.LogConfiguration, Data: []byte{0xc1}})
	entries := h.entries()
	e := entries[len(entries)-2]
	if e.Action != "membership change" || e.Detail != "voters: dc1-a; nonvoters: dc2-a" || e.Time != entries[len(entries)-3].Time {
		t.Fatalf("entry %+v", e)
	}
	if last := entries[len(entries)-1]; last.Detail != "undecodable configuration" {
		t.Fatalf("garbage configuration recorded as %+v", last)
	}
}

// TestOpensDatabaseWithoutRegister opens a database written before the register existed: it
// is accepted and gets the bucket.
func TestOpensDatabaseWithoutRegister(t *testing.T) {
	h := newHarness(t)
	s := h.f.sealer
	h.openElection("alice")
	h.tamper(s, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketRegister); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyRegisterHead)
	})
	h.mustApply(typeNoop, nil)
	if e := h.entries(); len(e) != 1 || e[0].Action != "no-op" {
		t.Fatalf("register after upgrade: %+v", e)
	}
}

// TestOpensDatabaseWithJournal opens a database of the version that kept a journal beside the
// register: it opens, the journal bucket is dropped, and the register goes on.
func TestOpensDatabaseWithJournal(t *testing.T) {
	h := newHarness(t)
	s := h.f.sealer
	h.openElection("alice")
	before := len(h.entries())
	h.tamper(s, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("journal"))
		if err != nil {
			return err
		}
		return b.Put(seqKey(0), s.Seal([]byte("journal/\x00\x00\x00\x00\x00\x00\x00\x00"), []byte("an old journal record")))
	})
	if err := h.f.view(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("journal")) != nil {
			return errors.New("the journal bucket survived the open")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.mustApply(typeNoop, nil)
	if e := h.entries(); len(e) != before+1 {
		t.Fatalf("register after upgrade: %d entries, want %d", len(e), before+1)
	}
	if _, err := h.f.VerifyRegister(nil); err != nil {
		t.Fatal(err)
	}
}

// TestDrillsAndDeliveriesRecorded: a drill and an outbox delivery are named in the register;
// a failed delivery's error text (which may quote the recipient) is not.
func TestDrillsAndDeliveriesRecorded(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	h.mustApply(fsmpb.CommandType_COMMAND_RECORD_DRILL, &fsmpb.RecordDrill{Name: "failover", Ok: true, Summary: "leader lost, 0 writes lost", StartedAtUnixNano: 3, FinishedAtUnixNano: 4})
	h.mustApply(typeDone, &fsmpb.OutboxDone{Seq: 7, Detail: "550 no mailbox alice@example.org"})
	h.mustApply(typeDone, &fsmpb.OutboxDone{Seq: 7, Delivered: true, Detail: "smtp relay 2"})
	e := h.entries()
	e = e[len(e)-3:]
	if e[0].Action != "drill" || e[0].Object != "drill failover" || e[0].Detail != "succeeded: leader lost, 0 writes lost" {
		t.Fatalf("drill entry %+v", e[0])
	}
	if e[1].Action != "deliver message" || e[1].Object != "outbox message 7" || strings.Contains(e[1].Detail, "alice") {
		t.Fatalf("failed delivery entry %+v", e[1])
	}
	if e[2].Detail != "delivered by smtp relay 2" {
		t.Fatalf("delivery entry %+v", e[2])
	}
}
