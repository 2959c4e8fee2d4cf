package fsm

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

const typeCastBatch = fsmpb.CommandType_COMMAND_CAST_BATCH

// castCommand is a CAST as a node receives it: validated, not stamped, with its caller.
func castCommand(t testing.TB, p *fsmpb.Cast) *fsmpb.Command {
	t.Helper()
	c, err := NewCommand(typeCast, p)
	if err != nil {
		t.Fatal(err)
	}
	c.Actor = &fsmpb.Actor{Principal: "client:app", Ip: "192.0.2.7"}
	return c
}

// applyBatch proposes casts as one CAST_BATCH entry and returns the answers in the order of
// casts (the batch itself is shuffled).
func (h *harness) applyBatch(casts ...*fsmpb.Cast) []*fsmpb.Response {
	h.t.Helper()
	cmds := make([]*fsmpb.Command, len(casts))
	for i, p := range casts {
		cmds[i] = castCommand(h.t, p)
	}
	batch, order, err := NewCastBatch(cmds, rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	h.last++
	if err := Stamp(batch, h.now(), nil); err != nil {
		h.t.Fatal(err)
	}
	resp := h.applyLog(commandLog(h.last, encode(h.t, batch)))
	inBatch, err := CastBatchResponses(resp, len(casts))
	if err != nil {
		h.t.Fatalf("batch answer %v: %v", resp, err)
	}
	out := make([]*fsmpb.Response, len(casts))
	for j, i := range order {
		out[i] = inBatch[j]
	}
	return out
}

func TestCastBatchRecordsEachCast(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob", "carol")
	resps := h.applyBatch(cast("r1", "alice", "ballot-A"), cast("r2", "bob", "ballot-B"), cast("r3", "carol", "ballot-C"))
	for i, ballot := range []string{"ballot-A", "ballot-B", "ballot-C"} {
		wantCode(t, resps[i], nil)
		r := resps[i].GetCast()
		fp := sha256.Sum256([]byte(ballot))
		if r.Replayed || !bytes.Equal(r.Fingerprint, fp[:]) || r.EmargedAtUnixNano != h.now().UnixNano() {
			t.Fatalf("cast %d answered %v", i, r)
		}
	}
	if c := h.counts(); c.Ballots != 3 || c.Emargements != 3 {
		t.Fatalf("counts = %+v", c)
	}
	for _, v := range []string{"alice", "bob", "carol"} {
		if voted, _, _ := h.f.HasVoted(v); !voted {
			t.Fatalf("%s has no émargement", v)
		}
	}
}

// TestCastBatchDuplicateVoter: two ballots of one voter in one batch: one enters, the other
// is refused as a second ballot, whichever the shuffle put first.
func TestCastBatchDuplicateVoter(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	resps := h.applyBatch(cast("r1", "alice", "ballot-A1"), cast("r2", "alice", "ballot-A2"), cast("r3", "bob", "ballot-B"))
	wantCode(t, resps[2], nil)
	ok := 0
	for _, r := range resps[:2] {
		if ResponseError(r) == nil {
			ok++
			continue
		}
		wantCode(t, r, ErrAlreadyVoted)
	}
	if ok != 1 {
		t.Fatalf("%d of alice's two ballots entered the box: %v", ok, resps)
	}
	if c := h.counts(); c.Ballots != 2 || c.Emargements != 2 {
		t.Fatalf("counts = %+v", c)
	}
	// A later batch from alice is refused too.
	wantCode(t, h.applyBatch(cast("r4", "alice", "ballot-A3"))[0], ErrAlreadyVoted)
}

// TestCastBatchRetriedRequest: a request retried inside the batch, in a later batch or as a
// lone CAST after the close always answers the first receipt and adds nothing.
func TestCastBatchRetriedRequest(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice", "bob")
	resps := h.applyBatch(cast("r1", "alice", "ballot-A"), cast("r1", "alice", "ballot-A"))
	wantCode(t, resps[0], nil)
	wantCode(t, resps[1], nil)
	a, b := resps[0].GetCast(), resps[1].GetCast()
	if a.Replayed == b.Replayed || !bytes.Equal(a.Fingerprint, b.Fingerprint) || a.EmargedAtUnixNano != b.EmargedAtUnixNano {
		t.Fatalf("a retry inside the batch answered %v and %v", a, b)
	}
	first := a.EmargedAtUnixNano
	if c := h.counts(); c.Ballots != 1 || c.Emargements != 1 {
		t.Fatalf("counts after the retry inside the batch = %+v", c)
	}
	later := h.applyBatch(cast("r1", "alice", "ballot-A"), cast("r2", "bob", "ballot-B"))
	wantCode(t, later[0], nil)
	if r := later[0].GetCast(); !r.Replayed || r.EmargedAtUnixNano != first {
		t.Fatalf("a retry in a later batch answered %v, want the first receipt at %d", r, first)
	}
	h.mustApply(typeClose, &fsmpb.Transition{})
	if r := h.mustApply(typeCast, cast("r1", "alice", "ballot-A")).GetCast(); !r.Replayed || r.EmargedAtUnixNano != first {
		t.Fatalf("a lone retry after the close answered %v", r)
	}
	after := h.applyBatch(cast("r1", "alice", "ballot-A"))
	wantCode(t, after[0], nil)
	if c := h.counts(); c.Ballots != 2 || c.Emargements != 2 {
		t.Fatalf("counts = %+v", c)
	}
}

// TestCastBatchRefusalLeavesNoTrace: the refused casts of a batch change nothing: the state
// equals that of a batch of the accepted casts alone.
func TestCastBatchRefusalLeavesNoTrace(t *testing.T) {
	h, ref := newHarness(t), newHarness(t)
	for _, x := range []*harness{h, ref} {
		x.openElection("alice", "bob", "carol")
		x.applyBatch(cast("r0", "carol", "ballot-C"))
	}
	resps := h.applyBatch(
		cast("r1", "alice", "ballot-A"),
		cast("r2", "mallory", "ballot-M"),            // not on the roll
		cast("r3", "bob", "ballot-C"),                // copies carol's ballot
		cast("r4", "carol", "ballot-C2"),             // carol's second ballot
		cast("", "bob", "ballot-B"),                  // no request id
		&fsmpb.Cast{RequestId: "r5", VoterId: "bob"}, // empty ballot
		&fsmpb.Cast{ElectionId: "other", RequestId: "r6", VoterId: "bob", Ballot: []byte("b")},
	)
	wantCode(t, resps[0], nil)
	for i, want := range []error{ErrUnknownVoter, ErrDuplicateBallot, ErrAlreadyVoted, ErrInvalid, ErrInvalid, ErrWrongElection} {
		wantCode(t, resps[i+1], want)
	}
	wantCode(t, ref.applyBatch(cast("r1", "alice", "ballot-A"))[0], nil)
	if !bytes.Equal(h.digest(), ref.digest()) {
		t.Fatal("refused casts of a batch left a trace")
	}
	if voted, _, _ := h.f.HasVoted("bob"); voted {
		t.Fatal("a refused cast left an émargement for bob")
	}
	// Outside the window: after the close a first cast is refused, whatever the batch holds.
	h.mustApply(typeClose, &fsmpb.Transition{})
	before := h.dataDigest()
	wantCode(t, h.applyBatch(cast("r7", "bob", "ballot-B"))[0], ErrWrongPhase)
	if !bytes.Equal(h.dataDigest(), before) {
		t.Fatal("a cast refused after the close left a trace")
	}
}

// TestCastBatchRegisterAndEmargement: after batches with refusals and retries, the box, the
// émargement and the counters agree, and the register has one "cast" entry per cast, with
// no caller address.
func TestCastBatchRegisterAndEmargement(t *testing.T) {
	h := newHarness(t)
	h.openElection("v1", "v2", "v3", "v4", "v5")
	h.applyBatch(cast("a", "v1", "b1"), cast("b", "v2", "b2"), cast("a", "v1", "b1"))
	h.applyBatch(cast("c", "v3", "b3"), cast("d", "v1", "other"), cast("e", "v9", "b9"))
	h.mustApply(typeCast, cast("f", "v4", "b4"))
	h.applyBatch(cast("g", "v5", "b5"), cast("f", "v4", "b4"))

	var emargements, box int
	err := h.f.view(func(tx *bolt.Tx) error {
		emargements = tx.Bucket(bucketEmargement).Stats().KeyN
		box = tx.Bucket(bucketBox).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := h.counts()
	if c.Ballots != 5 || c.Emargements != 5 || emargements != 5 || box != 5 {
		t.Fatalf("counters %+v, %d émargements, %d ballots stored", c, emargements, box)
	}
	casts := 0
	err = h.f.RegisterEntries(1, func(e *audit.Entry) error {
		if e.Action != "cast" {
			return nil
		}
		casts++
		if e.Connection != nil || e.HasConnection {
			t.Errorf("register entry %d of a cast keeps the caller's address", e.Seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if casts != 9 {
		t.Fatalf("%d cast entries in the register, want one per cast (9)", casts)
	}
	if _, err := h.f.VerifyRegister(nil); err != nil {
		t.Fatalf("register does not verify: %v", err)
	}
	if chk, err := h.f.CheckBox(0, 0); err != nil || !bytes.Equal(chk.Stored, chk.Computed) {
		t.Fatalf("box digest: %+v %v", chk, err)
	}
}

// TestNewCastBatchShuffles: the batch's order is a permutation drawn at random, and each
// answer goes back to its own cast.
func TestNewCastBatchShuffles(t *testing.T) {
	cmds := make([]*fsmpb.Command, 64)
	for i := range cmds {
		cmds[i] = castCommand(t, cast("r", "v", string(rune('A'+i))))
	}
	batch, order, err := NewCastBatch(cmds, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(order)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("order %v is not a permutation", order)
		}
	}
	if slices.IsSorted(order) {
		t.Fatal("the batch kept the order of arrival")
	}
	p := &fsmpb.CastBatch{}
	if err := proto.Unmarshal(batch.Payload, p); err != nil {
		t.Fatal(err)
	}
	for j, i := range order {
		if !bytes.Equal(p.Casts[j].Cast, cmds[i].Payload) {
			t.Fatalf("cast %d of the batch is not cast %d of the input", j, i)
		}
	}
	if _, _, err := NewCastBatch(nil, rand.Reader); err == nil {
		t.Fatal("an empty batch was built")
	}
	if _, _, err := NewCastBatch([]*fsmpb.Command{command(t, typeNoop, nil, 1)}, rand.Reader); err == nil {
		t.Fatal("a batch took a command that is not a cast")
	}
	if _, _, err := NewCastBatch(cmds, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a batch without a source of randomness: %v, want ErrInvalid", err)
	}
}

// TestCastBatchRefusedWhole: a batch that does not parse, or carries no stamp, is refused
// for every cast and changes nothing but the register.
func TestCastBatchRefusedWhole(t *testing.T) {
	h := newHarness(t)
	h.openElection("alice")
	before := h.dataDigest()
	wantCode(t, h.apply(typeCastBatch, &fsmpb.CastBatch{}), ErrInvalid)
	batch, _, err := NewCastBatch([]*fsmpb.Command{castCommand(t, cast("r1", "alice", "A"))}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.last++
	resp := h.applyLog(&raft.Log{Index: h.last, Type: raft.LogCommand, Data: encode(t, batch)})
	wantCode(t, resp, ErrInvalid)
	split, err := CastBatchResponses(resp, 1)
	if err != nil || ResponseError(split[0]) == nil {
		t.Fatalf("a batch refused whole split into %v, %v", split, err)
	}
	if !bytes.Equal(h.dataDigest(), before) {
		t.Fatal("a refused batch changed the state")
	}
}

// dataDigest is digest without the applied index, which every entry moves.
func (h *harness) dataDigest() []byte {
	h.t.Helper()
	d := sha256.New()
	err := h.f.view(func(tx *bolt.Tx) error {
		return walkPlain(tx, h.f.sealer, func(bucket, key, plain []byte) error {
			if bytes.Equal(bucket, bucketRegister) || bytes.Equal(key, keyRegisterHead) || bytes.Equal(key, keyAppliedIndex) {
				return nil
			}
			d.Write(bucket)
			d.Write(key)
			d.Write(plain)
			return nil
		})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d.Sum(nil)
}

// castBatchOf is the payload of a CAST_BATCH of casts, in their order.
func castBatchOf(t testing.TB, casts ...*fsmpb.Cast) *fsmpb.CastBatch {
	p := &fsmpb.CastBatch{}
	for _, c := range casts {
		p.Casts = append(p.Casts, &fsmpb.BatchedCast{Cast: castCommand(t, c).Payload})
	}
	return p
}
