package backup

import (
	"bytes"
	"testing"
	"time"

	"github.com/urne-vote/urne/internal/teststate"
)

// testState is a state machine with an election, voters and ballots, and its snapshot stream.
type testState = teststate.State

// makeState builds a real state machine in a temporary folder and returns its snapshot.
func makeState(t testing.TB, voters, ballots int) testState {
	t.Helper()
	return teststate.Build(t, teststate.Options{ElectionID: "e-backup", Name: "Backup test", Voters: voters, Ballots: ballots})
}

// testKey is a fixed backup key, so that fuzz seeds stay valid.
func testKey(t testing.TB, id string) *Secret {
	t.Helper()
	var k [keySize]byte
	copy(k[:], id)
	return &Secret{id: id, key: &k}
}

// seal archives a state stream with s and returns the file.
func seal(t testing.TB, st testState, s *Secret) []byte {
	t.Helper()
	var out bytes.Buffer
	h := Header{ElectionID: "e-backup", Index: st.Index, Term: 3, TakenAt: time.Unix(1700000000, 0).UTC(), NodeID: "dc1-a"}
	if _, _, err := Save(&out, bytes.NewReader(st.Stream), s, h); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
