package test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// TestImportSortsTheRoll imports through a cluster a roll the receiving node spools and
// commits in key order, in two passes of several commands each: homonyms within the roll are
// refused before anything is committed, a homonym of a voter on the roll is refused, and the
// same roll in another order changes nothing.
func TestImportSortsTheRoll(t *testing.T) {
	c := harness.New(t, "3")
	ctx := harness.Context(t, 2*time.Minute)
	org := c.Client("organizer")
	if _, err := org.CreateElection(ctx, "test-election", "Test election"); err != nil {
		t.Fatal(err)
	}
	const n = 12000 // three commands in each pass
	roll := harness.Voters("v", n)
	for i, v := range roll {
		v.DateOfBirth = fmt.Sprintf("19%02d-%02d-01", 40+i%60, 1+i%12)
	}
	twin := proto.Clone(roll[10]).(*urnepb.Voter)
	twin.VoterId = "twin"
	voters := func(want uint64) {
		t.Helper()
		for _, id := range c.Running() {
			counts, err := org.Counts(ctx, client.OnEndpoint(c.GRPC(id)), client.Stale())
			if err != nil {
				t.Fatalf("counts on %s: %v", id, err)
			}
			if counts.Voters != want {
				t.Fatalf("%s holds %d voters, want %d", id, counts.Voters, want)
			}
		}
	}

	_, err := org.ImportVoters(ctx, harness.Slice(append(slices.Clone(roll), twin)))
	if !errors.Is(err, client.ErrRuleViolated) || !strings.Contains(err.Error(), `"twin"`) || !strings.Contains(err.Error(), `"v000011"`) {
		t.Fatalf("roll with homonyms: %v, want a refusal naming twin and v000011", err)
	}
	c.WaitConverged()
	voters(0)

	resp, err := org.ImportVoters(ctx, harness.Slice(roll))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Imported != n || resp.TotalVoters != n {
		t.Fatalf("import: %v, want %d imported", resp, n)
	}
	slices.Reverse(roll)
	if resp, err = org.ImportVoters(ctx, harness.Slice(roll)); err != nil || resp.Unchanged != n || resp.Imported != 0 {
		t.Fatalf("the same roll reversed: %v, %v; want %d unchanged", resp, err, n)
	}
	if _, err := org.ImportVoters(ctx, harness.Slice([]*urnepb.Voter{twin})); !errors.Is(err, client.ErrRuleViolated) {
		t.Fatalf("homonym of a voter on the roll: %v, want ErrRuleViolated", err)
	}
	c.WaitConverged()
	voters(n)
	c.AssertSameState()
}
