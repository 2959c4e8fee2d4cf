package archive

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/internal/teststate"
)

// closedElection runs a test election to its close on a real state machine and returns the
// snapshot stream the leader would send, and its index.
func closedElection(t testing.TB, voters, ballots int) ([]byte, uint64) {
	t.Helper()
	st := teststate.Build(t, teststate.Options{ElectionID: "e-archive", Name: "Archive test", Voters: voters, Ballots: ballots, Close: true})
	return st.Stream, st.Index
}

// testKey is a fixed backup key, so that fuzz seeds stay valid between runs.
func testKey(t testing.TB, id string) *backup.Secret {
	t.Helper()
	raw := make([]byte, 32)
	copy(raw, id)
	s, err := backup.ParseKey([]byte("urne-backup-key-v1:" + id + ":" + base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func header(index uint64) backup.Header {
	return backup.Header{ElectionID: "e-archive", Index: index, Term: 2, TakenAt: time.Unix(1700001000, 0).UTC(), NodeID: "dc1-a"}
}

// makeArchive seals a closed election with key id "archive-key".
func makeArchive(t testing.TB, o Options) ([]byte, *Created) {
	t.Helper()
	state, index := closedElection(t, 20, 12)
	var out bytes.Buffer
	c, err := Create(&out, bytes.NewReader(state), testKey(t, "archive-key"), header(index), o)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), c
}
