package fsm

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// BenchmarkApplyBatchCast applies batches of 64 casts, fsync on, as raft delivers them
// under load. Voters for each batch are imported outside the timer.
func BenchmarkApplyBatchCast(b *testing.B) {
	const batch = 64
	f, h := benchOpenElection(b)
	ballot := make([]byte, 2048)
	b.ReportAllocs()
	n, pages := 0, int64(0)
	for b.Loop() {
		b.StopTimer()
		ids := make([]string, batch)
		for i := range ids {
			ids[i] = fmt.Sprintf("voter-%08d", n+i)
		}
		h.reopenForImport(ids)
		logs := make([]*raft.Log, batch)
		for i, id := range ids {
			copy(ballot, fmt.Sprintf("ballot-%08d", n+i))
			logs[i] = h.entry(typeCast, &fsmpb.Cast{RequestId: "req-" + id, VoterId: id, Ballot: ballot})
		}
		n += batch
		b.StartTimer()
		responses, written := applyAndCommit(f, logs)
		pages += written
		for i, r := range responses {
			if err := ResponseError(r.(*fsmpb.Response)); err != nil {
				b.Fatalf("cast %d: %v", i, err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/cast")
	b.ReportMetric(float64(pages)/float64(n), "pages/cast")
}

// applyAndCommit applies logs and commits them, as if the batch were the only one to commit:
// the most a batch can cost, since under load one commit serves the batches of commitDelay.
// It returns the pages the commit wrote.
func applyAndCommit(f *FSM, logs []*raft.Log) ([]interface{}, int64) {
	before := f.db.Stats()
	responses := f.ApplyBatch(logs)
	f.commit()
	after := f.db.Stats()
	return responses, after.TxStats.GetWrite() - before.TxStats.GetWrite()
}

// benchOpenElection is a state database on disk, fsync on, holding an open test election.
func benchOpenElection(b *testing.B) (*FSM, *harness) {
	f, err := Open(filepath.Join(b.TempDir(), "state.db"), newSealer(b, 1), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	h := &harness{t: b, f: f}
	h.openElection()
	return f, h
}

// reopenForImport adds voters to an open election by writing them as an import would;
// imports are refused once the election is open.
func (h *harness) reopenForImport(ids []string) {
	h.t.Helper()
	h.f.mu.RLock()
	defer h.f.mu.RUnlock()
	err := h.update(func(tx *bolt.Tx) error {
		s, err := loadApplyState(tx, h.f.sealer)
		if err != nil {
			return err
		}
		for _, v := range voters(ids...).Voters {
			if err := s.putVoter(voterKeyWith(s.indexMAC(), v.VoterId), v); err != nil {
				return err
			}
			s.counters.Voters++
		}
		s.countersDirty = true
		return s.flush(h.f.AppliedIndex())
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	c := command(b, typeCast, &fsmpb.Cast{RequestId: "req-1", VoterId: "voter-1", Ballot: make([]byte, 2048)}, 1)
	b.ReportAllocs()
	for b.Loop() {
		data, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealDigest hashes the seal over a roll of 100,000 voters with the legal fields,
// as sealing and opening do in one apply on every replica.
func BenchmarkSealDigest(b *testing.B) {
	h := newHarness(b)
	h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Profile: ProfileCivilService})
	for page := range 20 {
		p := &fsmpb.ImportVoters{}
		for i := range MaxVotersPerCommand {
			v := legalVoter(fmt.Sprintf("voter-%07d", page*MaxVotersPerCommand+i), "A")
			v.DateOfBirth = fmt.Sprintf("19%02d-01-%02d", i%100, 1+i%28)
			p.Voters = append(p.Voters, v)
		}
		h.mustApply(typeImport, p)
	}
	b.ResetTimer()
	for b.Loop() {
		err := h.f.view(func(tx *bolt.Tx) error {
			e, err := readElection(tx, h.f.sealer)
			if err != nil {
				return err
			}
			_, err = h.f.recomputeSeal(tx, e)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyCastBatch applies casts grouped as the leader groups them: entries of
// CAST_BATCH with perEntry casts each, raft delivering entries at a time, fsync on, 1 KiB
// ballots. ns/cast compares with BenchmarkApplyBatchCast (one cast per entry).
func BenchmarkApplyCastBatch(b *testing.B) {
	for _, shape := range []struct{ entries, perEntry int }{{1, 64}, {1, 256}, {4, 256}, {16, 256}} {
		b.Run(fmt.Sprintf("entries=%d/casts=%d", shape.entries, shape.perEntry), func(b *testing.B) {
			benchCastBatches(b, shape.entries, shape.perEntry)
		})
	}
}

func benchCastBatches(b *testing.B, entries, perEntry int) {
	f, h := benchOpenElection(b)
	ballot := make([]byte, 1024)
	b.ReportAllocs()
	n, pages := 0, int64(0)
	for b.Loop() {
		b.StopTimer()
		ids := make([]string, entries*perEntry)
		for i := range ids {
			ids[i] = fmt.Sprintf("voter-%08d", n+i)
		}
		h.reopenForImport(ids)
		logs := make([]*raft.Log, entries)
		for e := range logs {
			casts := make([]*fsmpb.Cast, perEntry)
			for i := range casts {
				id := ids[e*perEntry+i]
				copy(ballot, fmt.Sprintf("ballot-%08d", n+e*perEntry+i))
				casts[i] = &fsmpb.Cast{RequestId: "req-" + id, VoterId: id, Ballot: append([]byte(nil), ballot...)}
			}
			logs[e] = h.entry(typeCastBatch, castBatchOf(b, casts...))
		}
		n += len(ids)
		b.StartTimer()
		responses, written := applyAndCommit(f, logs)
		pages += written
		for i, r := range responses {
			resps, err := CastBatchResponses(r.(*fsmpb.Response), perEntry)
			if err != nil {
				b.Fatalf("entry %d: %v", i, err)
			}
			for _, c := range resps {
				if err := ResponseError(c); err != nil {
					b.Fatalf("entry %d: %v", i, err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/cast")
	b.ReportMetric(float64(pages)/float64(n), "pages/cast")
}

// benchBox is a state database holding an open test election with ballots casts of 1 KiB.
func benchBox(b *testing.B, ballots int) *FSM {
	f, h := benchOpenElection(b)
	const perEntry = 1000
	for n := 0; n < ballots; n += perEntry {
		ids := make([]string, perEntry)
		casts := make([]*fsmpb.Cast, perEntry)
		for i := range ids {
			ids[i] = fmt.Sprintf("voter-%08d", n+i)
			ballot := make([]byte, 1024)
			rand.Read(ballot)
			casts[i] = &fsmpb.Cast{RequestId: "req-" + ids[i], VoterId: ids[i], Ballot: ballot}
		}
		h.reopenForImport(ids)
		f.ApplyBatch([]*raft.Log{h.entry(typeCastBatch, castBatchOf(b, casts...))})
	}
	return f
}

// BenchmarkCheckBox recomputes the box digest over 20,000 ballots of 1 KiB, as every check on
// demand does: its cost grows with the box.
func BenchmarkCheckBox(b *testing.B) {
	const ballots = 20000
	f := benchBox(b, ballots)
	b.ReportAllocs()
	for b.Loop() {
		c, err := f.CheckBox(0, 0)
		if err != nil {
			b.Fatal(err)
		}
		if c.Ballots != ballots {
			b.Fatalf("%d ballots checked, want %d", c.Ballots, ballots)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ballots), "ns/ballot")
}

// BenchmarkVerifyRegister checks the whole register of an election of 20,000 ballots, an
// entry per cast, as every check on demand does.
func BenchmarkVerifyRegister(b *testing.B) {
	f := benchBox(b, 20000)
	b.ReportAllocs()
	var entries uint64
	for b.Loop() {
		rep, err := f.VerifyRegister(nil)
		if err != nil {
			b.Fatal(err)
		}
		entries = rep.Entries
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(uint64(b.N)*entries), "ns/entry")
}

// BenchmarkScheduledBoxCheck runs the scheduled checks of a box of 400,000 ballots of 1 KiB in
// turn: each walks whole slices until ScheduledCheckBudget, and its cost no longer grows with
// the box. checks/pass is how many of them walk the whole box once.
func BenchmarkScheduledBoxCheck(b *testing.B) {
	const ballots = 400000
	f := benchBox(b, ballots)
	b.ReportAllocs()
	next, slices, walked := 0, 0, uint64(0)
	for b.Loop() {
		c, err := f.CheckBox(next, ScheduledCheckBudget)
		if err != nil {
			b.Fatal(err)
		}
		next, slices, walked = c.Next, slices+c.Slices, walked+c.Ballots
	}
	b.ReportMetric(float64(walked)/float64(b.N), "ballots/check")
	b.ReportMetric(float64(b.N*BoxSlices)/float64(slices), "checks/pass")
}

// BenchmarkSnapshot persists what raft's snapshot of an election of 20,000 ballots of 1 KiB
// holds: a reference to the state database, against the full copy that backups take and a
// follower's install sends (before the snapshot store seals and writes it).
func BenchmarkSnapshot(b *testing.B) {
	const ballots = 20000
	f := benchBox(b, ballots)
	for _, bb := range []struct {
		name string
		take func() (raft.FSMSnapshot, error)
	}{{"reference", f.Snapshot}, {"full", f.FullSnapshot}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				snap, err := bb.take()
				if err != nil {
					b.Fatal(err)
				}
				sink := &memorySink{}
				if err := snap.Persist(sink); err != nil {
					b.Fatal(err)
				}
				snap.Release()
				size = sink.Len()
			}
			b.ReportMetric(float64(size)/ballots, "B/ballot")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ballots), "ns/ballot")
		})
	}
}

// BenchmarkCastBatchCodec builds (shuffle included), encodes and decodes a CAST_BATCH of 256
// casts of 1 KiB, as the leader and every replica do per batch.
func BenchmarkCastBatchCodec(b *testing.B) {
	cmds := make([]*fsmpb.Command, 256)
	for i := range cmds {
		cmds[i] = castCommand(b, &fsmpb.Cast{RequestId: fmt.Sprintf("req-%d", i), VoterId: fmt.Sprintf("voter-%d", i), Ballot: make([]byte, 1024)})
	}
	b.ReportAllocs()
	for b.Loop() {
		c, _, err := NewCastBatch(cmds, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		data, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen opens the closed state database of an election of 200,000 ballots of 1 KiB,
// as a node does when it starts: the read-only walk that opens every value, then the
// read-write open.
func BenchmarkOpen(b *testing.B) {
	const ballots = 200000
	f := benchBox(b, ballots)
	path, sealer := f.path, f.sealer
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if err := verifyExisting(path, sealer); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ballots), "ns/ballot")
	})
	b.Run("read-write", func(b *testing.B) {
		for b.Loop() {
			db, _, _, err := (&FSM{sealer: sealer}).openReadWrite(path)
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ballots), "ns/ballot")
	})
}

// BenchmarkApplyImport applies the import of a 200,000-voter roll, fsync on, into a fresh
// election: in the order the roll arrives, each voter also writing its homonym key (before
// the receiving node spooled the roll), and in two passes, the homonym keys claimed in their
// order, then the voters in the order of theirs (what the node proposes now).
func BenchmarkApplyImport(b *testing.B) {
	const voters = 200000
	roll := make([]*fsmpb.VoterRecord, voters)
	for i := range roll {
		id := fmt.Sprintf("v%07d", i+1)
		roll[i] = &fsmpb.VoterRecord{VoterId: id, Name: fmt.Sprintf("Voter %d", i), Email: id + "@example.org",
			DateOfBirth: fmt.Sprintf("19%02d-%02d-%02d", 50+i%50, 1+i%12, 1+i%28),
			SecretHash:  []byte(fakeBcrypt + strings.Repeat("x", 31)), Composante: "IUT", College: "A", Secteur: "Nord"}
	}
	arrival := make([]*fsmpb.ImportVoters, 0, voters/MaxVotersPerCommand)
	for c := range slices.Chunk(roll, MaxVotersPerCommand) {
		arrival = append(arrival, &fsmpb.ImportVoters{Voters: c})
	}
	orders := map[string][]*fsmpb.ImportVoters{"arrival": arrival, "sorted": inKeyOrder(roll)}
	for _, mode := range []string{"arrival", "sorted"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				h := newHarness(b)
				h.mustApply(typeCreate, &fsmpb.CreateElection{ElectionId: electionID, Name: "CSE 2026"})
				logs := make([]*raft.Log, len(orders[mode]))
				for i, p := range orders[mode] {
					logs[i] = h.entry(typeImport, p)
				}
				b.StartTimer()
				for _, l := range logs {
					if err := ResponseError(h.f.ApplyBatch([]*raft.Log{l})[0].(*fsmpb.Response)); err != nil {
						b.Fatal(err)
					}
				}
				h.f.commit()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*voters), "ns/voter")
		})
	}
}
