package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
)

// newTestKeyring is a keyring in dir under a generated KEK.
func newTestKeyring(t testing.TB, dir string) *keyring.Keyring {
	t.Helper()
	kek, err := keyring.GenerateKEK("test-kek")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Create(filepath.Join(dir, "keyring"), kek)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

var spoolIndexKey = bytes.Repeat([]byte{7}, fsm.IndexKeySize)

// newTestSpool is a spool in its own directory, which it returns.
func newTestSpool(t testing.TB) (*rollSpool, string) {
	t.Helper()
	dir := t.TempDir()
	keys := newTestKeyring(t, t.TempDir())
	s, err := newRollSpool(dir, keys, fsm.NewRollIndex(spoolIndexKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s, dir
}

func spoolVoter(id, name string) *fsmpb.VoterRecord {
	return &fsmpb.VoterRecord{VoterId: id, Name: name, Email: id + "@example.org", DateOfBirth: "1980-01-01"}
}

func addAll(t *testing.T, s *rollSpool, voters ...*fsmpb.VoterRecord) {
	t.Helper()
	for _, v := range voters {
		if err := s.add(v); err != nil {
			t.Fatal(err)
		}
	}
}

// The spool gives back every voter it was given, whole, in the order of their keys, n at a
// time; a voter given twice comes back twice, in the order given, so that the second is the
// rectification it was.
func TestRollSpoolYieldsVotersInKeyOrder(t *testing.T) {
	s, _ := newTestSpool(t)
	s.chunk = 4 // several chunks, the last one part full
	var in []*fsmpb.VoterRecord
	for i := range 25 {
		in = append(in, spoolVoter(fmt.Sprintf("v%03d", i), fmt.Sprintf("Voter %d", i)))
	}
	rectified := spoolVoter("v007", "Voter 7, rectified")
	addAll(t, s, in...)
	addAll(t, s, rectified)
	index := fsm.NewRollIndex(spoolIndexKey)
	var out []*fsmpb.VoterRecord
	for batch, err := range s.voters(10) {
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) > 10 {
			t.Fatalf("batch of %d voters, want at most 10", len(batch))
		}
		out = append(out, batch...)
	}
	if len(out) != len(in)+1 {
		t.Fatalf("%d voters out, want %d", len(out), len(in)+1)
	}
	want := map[string][]*fsmpb.VoterRecord{}
	for _, v := range append(in, rectified) {
		want[v.VoterId] = append(want[v.VoterId], v)
	}
	for i, v := range out {
		if i > 0 && bytes.Compare(index.VoterKey(out[i-1].VoterId), index.VoterKey(v.VoterId)) > 0 {
			t.Fatalf("voter %d (%s) comes after a greater key", i, v.VoterId)
		}
		if !proto.Equal(v, want[v.VoterId][0]) {
			t.Fatalf("voter %s came back as %v, want %v", v.VoterId, v, want[v.VoterId][0])
		}
		want[v.VoterId] = want[v.VoterId][1:]
	}
}

// The spool leaves no file behind, and what it writes is sealed.
func TestRollSpoolIsSealedAndNameless(t *testing.T) {
	s, dir := newTestSpool(t)
	addAll(t, s, spoolVoter("alice", "Alice Martin"))
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("the spool's directory holds %v (%v), want nothing", entries, err)
	}
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	if len(s.mapped) == 0 || bytes.Contains(s.mapped, []byte("Alice Martin")) || bytes.Contains(s.mapped, []byte("alice@")) {
		t.Fatalf("the spool holds the voter in clear: %q", s.mapped)
	}
}

// Two voters with the same name and date of birth are refused by sorting the roll, before
// anything is proposed; one voter given twice is not its own homonym.
func TestRollSpoolRefusesHomonyms(t *testing.T) {
	s, _ := newTestSpool(t)
	s.chunk = 2 // the homonyms in different chunks, the last one added after a first check
	addAll(t, s, spoolVoter("a", "Jean Dupont"), spoolVoter("b", "Marie Curie"), spoolVoter("a", "Jean Dupont"))
	if err := s.checkHomonyms(); err != nil {
		t.Fatalf("a voter given twice: %v", err)
	}
	addAll(t, s, spoolVoter("c", "jean  DUPONT"))
	err := s.checkHomonyms()
	if !errors.Is(err, fsm.ErrRuleViolated) || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("homonyms a and c: %v, want a refusal naming both", err)
	}
}

// Claims come in the order of the homonym keys, one per key, none for a voter without a date
// of birth.
func TestRollSpoolClaimsEachKeyOnce(t *testing.T) {
	s, _ := newTestSpool(t)
	s.chunk = 2 // a's two entries in different chunks
	undated := spoolVoter("u", "Undated")
	undated.DateOfBirth = ""
	addAll(t, s, spoolVoter("a", "A"), spoolVoter("b", "B"), spoolVoter("a", "A"), undated, spoolVoter("c", "C"))
	index := fsm.NewRollIndex(spoolIndexKey)
	var got []*fsmpb.HomonymClaim
	for batch := range s.claims(2) {
		if len(batch) > 2 {
			t.Fatalf("batch of %d claims, want at most 2", len(batch))
		}
		got = append(got, batch...)
	}
	if len(got) != 3 {
		t.Fatalf("%d claims, want 3 (a, b, c)", len(got))
	}
	for i, c := range got {
		v := spoolVoter(c.VoterId, strings.ToUpper(c.VoterId))
		if !bytes.Equal(c.Key, index.HomonymKey(v)) {
			t.Fatalf("claim of %s holds another key", c.VoterId)
		}
		if i > 0 && bytes.Compare(got[i-1].Key, c.Key) >= 0 {
			t.Fatalf("claim %d is out of order", i)
		}
	}
}

// A voter the state machine would refuse is refused as it is spooled, with its place in the roll.
func TestRollSpoolRefusesInvalidVoters(t *testing.T) {
	s, _ := newTestSpool(t)
	addAll(t, s, spoolVoter("a", "A"))
	bad := spoolVoter("b", "B")
	bad.DateOfBirth = "31/12/1980"
	err := s.add(bad)
	if !errors.Is(err, fsm.ErrInvalid) || !strings.Contains(err.Error(), "voter 2 of the roll") {
		t.Fatalf("invalid date of birth: %v", err)
	}
}

// Voters added after the spool was read in order are read in order too, and so is the
// spool once its last chunk is written (sorted by voter key) at the end.
func TestRollSpoolSortsAgainAfterAdding(t *testing.T) {
	s, _ := newTestSpool(t)
	s.chunk = 16 // one chunk that grows between two reads, then is written by finish
	inOrder := func(step string, want int) {
		t.Helper()
		var got []*fsmpb.HomonymClaim
		for batch := range s.claims(100) {
			got = append(got, batch...)
		}
		if len(got) != want {
			t.Fatalf("%s: %d claims, want %d", step, len(got), want)
		}
		for i := 1; i < len(got); i++ {
			if bytes.Compare(got[i-1].Key, got[i].Key) >= 0 {
				t.Fatalf("%s: claim %d is out of order", step, i)
			}
		}
	}
	for round := range 2 {
		for i := range 6 {
			addAll(t, s, spoolVoter(fmt.Sprintf("r%dv%d", round, i), fmt.Sprintf("Voter %d of round %d", i, round)))
		}
		inOrder(fmt.Sprintf("round %d", round), 6*(round+1))
	}
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	inOrder("after finish", 12)
}

// BenchmarkRollSpoolPasses is the receiving node's work between the end of the stream and
// the commands of an import, per voter of a 200,000-voter roll: the homonym check, the
// claims in their order, then the voters read back in theirs.
func BenchmarkRollSpoolPasses(b *testing.B) {
	const voters = 200_000
	s, _ := newTestSpool(b)
	for i := range voters {
		if err := s.add(spoolVoter(fmt.Sprintf("voter-%07d", i), fmt.Sprintf("Voter %d", i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.finish(); err != nil { // once, as on the node, not in the first pass only
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.checkHomonyms(); err != nil {
			b.Fatal(err)
		}
		for range s.claims(fsm.MaxVotersPerCommand) {
		}
		for _, err := range s.voters(fsm.MaxVotersPerCommand) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*voters), "ns/voter")
}

// Each chunk is written to the file in the order of its voter keys, so that reading the roll
// in that order reads each chunk's part of the file from its start to its end.
func TestRollSpoolWritesEachChunkInVoterKeyOrder(t *testing.T) {
	s, _ := newTestSpool(t)
	s.chunk = 8
	for i := range 30 {
		addAll(t, s, spoolVoter(fmt.Sprintf("v%03d", i), fmt.Sprintf("Voter %d", i)))
	}
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	for range s.inOrder(byVoterKey) {
	}
	for n, c := range s.chunks {
		for i := 1; i < len(c); i++ {
			if c[i-1].off >= c[i].off {
				t.Fatalf("chunk %d: voter %d of %d, in voter key order, is written before the one before it", n, i, len(c))
			}
		}
	}
}
