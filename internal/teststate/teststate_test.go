package teststate_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/internal/teststate"
)

// CastBatches casts through real CAST_BATCH entries: every voter has one ballot, and the
// snapshot stream reads back whole with the state machine's own digest and counts.
func TestCastBatchesBuildsAReadableState(t *testing.T) {
	b, err := teststate.NewBuilder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	const voters = 2500 // three batches of up to 1,024 casts, two transactions
	if err := b.Open(ctx, "e-batch", "Batches", voters, nil); err != nil {
		t.Fatal(err)
	}
	var last int
	if err := b.CastBatches(ctx, 0, voters, 100, 2, func(n int) { last = n }); err != nil {
		t.Fatal(err)
	}
	if last != voters {
		t.Fatalf("progress ended at %d casts, want %d", last, voters)
	}
	counts, err := b.FSM.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts.Ballots != voters || counts.Emargements != voters {
		t.Fatalf("counts %+v, want %d ballots and émargements", counts, voters)
	}
	// A voter who has cast cannot cast again: the batches went through the real checks.
	if err := b.CastBatches(ctx, 0, 1, 100, 1, nil); err == nil {
		t.Fatal("a second cast of the same voter was applied")
	}
	var stream bytes.Buffer
	index, err := b.Snapshot(&stream)
	if err != nil {
		t.Fatal(err)
	}
	st, err := backup.ReadState(&stream)
	if err != nil {
		t.Fatal(err)
	}
	_, digest, err := b.FSM.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if st.Index != index || !bytes.Equal(st.Digest, digest) || st.Ballots != voters {
		t.Fatalf("stream at %d digest %x with %d ballots; state machine at %d digest %x", st.Index, st.Digest, st.Ballots, index, digest)
	}
}
