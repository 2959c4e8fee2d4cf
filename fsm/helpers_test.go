package fsm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// aesSealer is a real AES-256-GCM sealer: key id byte | nonce | ciphertext.
type aesSealer struct {
	id   byte
	aead cipher.AEAD
}

func newSealer(t testing.TB, id byte) *aesSealer {
	t.Helper()
	block, err := aes.NewCipher(bytes.Repeat([]byte{id}, 32))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &aesSealer{id: id, aead: aead}
}

func (s *aesSealer) Seal(aad, plaintext []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = s.id
	if _, err := rand.Read(out[1:]); err != nil {
		panic(err)
	}
	return s.aead.Seal(out, out[1:], plaintext, aad)
}

func (s *aesSealer) Open(aad, ciphertext []byte) ([]byte, error) {
	n := 1 + s.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, errors.New("ciphertext too short")
	}
	if ciphertext[0] != s.id {
		return nil, errors.New("sealed with another key")
	}
	return s.aead.Open(nil, ciphertext[1:n], ciphertext[n:], aad)
}

// baseTime is the leader clock of the tests; entry i is stamped baseTime + i seconds.
var baseTime = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// fixedIndexKey is the index key every test election draws.
var fixedIndexKey = bytes.Repeat([]byte{0x5a}, IndexKeySize)

// harness feeds raft entries to an FSM, numbering them. Entries are stamped with the time of
// their index plus shift (tests move the leader clock with it) and carry actor.
type harness struct {
	t     testing.TB
	f     *FSM
	path  string
	last  uint64
	shift time.Duration
	actor string
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return openHarness(t, filepath.Join(t.TempDir(), "state.db"), newSealer(t, 1))
}

func openHarness(t testing.TB, path string, s Sealer) *harness {
	t.Helper()
	f, err := open(path, s, nil, true)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return &harness{t: t, f: f, path: path, last: f.AppliedIndex()}
}

// command builds a stamped command; entry index decides its time.
func command(t testing.TB, typ fsmpb.CommandType, payload proto.Message, index uint64) *fsmpb.Command {
	t.Helper()
	c, err := NewCommand(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := Stamp(c, stampTime(index), bytes.NewReader(fixedIndexKey)); err != nil {
		t.Fatal(err)
	}
	return c
}

func stampTime(index uint64) time.Time { return baseTime.Add(time.Duration(index) * time.Second) }

func encode(t testing.TB, c *fsmpb.Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func commandLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// update writes to the database outside raft, as a tampering test or a benchmark's setup
// does, once the applied entries are committed.
func (h *harness) update(fn func(tx *bolt.Tx) error) error {
	h.f.commit()
	return h.f.db.Update(fn)
}

// entry encodes a stamped command as the next raft entry of h.
func (h *harness) entry(typ fsmpb.CommandType, payload proto.Message) *raft.Log {
	h.t.Helper()
	h.last++
	c, err := NewCommand(typ, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := Stamp(c, h.now(), bytes.NewReader(bytes.Repeat(fixedIndexKey, 4))); err != nil {
		h.t.Fatal(err)
	}
	c.Actor = &fsmpb.Actor{Principal: h.actor}
	return commandLog(h.last, encode(h.t, c))
}

// now is the stamp time of the entry h.last.
func (h *harness) now() time.Time { return stampTime(h.last).Add(h.shift) }

func (h *harness) apply(typ fsmpb.CommandType, payload proto.Message) *fsmpb.Response {
	h.t.Helper()
	return h.applyLog(h.entry(typ, payload))
}

func (h *harness) applyLog(l *raft.Log) *fsmpb.Response {
	h.t.Helper()
	resp, ok := h.f.Apply(l).(*fsmpb.Response)
	if !ok {
		h.t.Fatalf("entry %d: response is not a *fsmpb.Response", l.Index)
	}
	return resp
}

// mustApply applies and fails the test unless the response is OK.
func (h *harness) mustApply(typ fsmpb.CommandType, payload proto.Message) *fsmpb.Response {
	h.t.Helper()
	resp := h.apply(typ, payload)
	if err := ResponseError(resp); err != nil {
		h.t.Fatalf("%s: %v", typ, err)
	}
	return resp
}

// digest hashes the election state: every record but the activity register, which grows with
// every command, refused or not (register_test.go checks it).
func (h *harness) digest() []byte {
	h.t.Helper()
	d := sha256.New()
	err := h.f.view(func(tx *bolt.Tx) error {
		return walkPlain(tx, h.f.sealer, func(bucket, key, plain []byte) error {
			if bytes.Equal(bucket, bucketRegister) || bytes.Equal(key, keyRegisterHead) {
				return nil
			}
			for _, field := range [][]byte{bucket, key, plain} {
				d.Write(binary.AppendUvarint(nil, uint64(len(field))))
				d.Write(field)
			}
			return nil
		})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d.Sum(nil)
}

func (h *harness) counts() Counts {
	h.t.Helper()
	c, err := h.f.Counts()
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func voters(ids ...string) *fsmpb.ImportVoters {
	p := &fsmpb.ImportVoters{}
	for _, id := range ids {
		p.Voters = append(p.Voters, &fsmpb.VoterRecord{VoterId: id, Name: "Name of " + id, Email: id + "@example.org"})
	}
	return p
}

func cast(requestID, voterID, ballot string) *fsmpb.Cast {
	return &fsmpb.Cast{RequestId: requestID, VoterId: voterID, Ballot: []byte(ballot)}
}

const electionID = "cse-2026"

// openElection creates, fills and opens the election.
func (h *harness) openElection(ids ...string) {
	h.t.Helper()
	h.mustApply(fsmpb.CommandType_COMMAND_CREATE_ELECTION, &fsmpb.CreateElection{ElectionId: electionID, Name: "CSE 2026"})
	if len(ids) > 0 {
		h.mustApply(fsmpb.CommandType_COMMAND_IMPORT_VOTERS, voters(ids...))
	}
	h.mustApply(fsmpb.CommandType_COMMAND_OPEN_ELECTION, &fsmpb.Transition{})
}

// wantCode fails unless resp has the code of want (nil for OK).
func wantCode(t testing.TB, resp *fsmpb.Response, want error) {
	t.Helper()
	err := ResponseError(resp)
	if want == nil && err != nil {
		t.Fatalf("want OK, got %v", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("want %v, got %v (response %v)", want, err, resp)
	}
}
