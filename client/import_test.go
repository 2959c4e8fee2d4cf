package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/urne-vote/urne/client/internal/fakeurne"
	"github.com/urne-vote/urne/transport/urnepb"
)

// generatedRoll yields n voters r000001.. and counts how many it produced.
type generatedRoll struct {
	n, produced int
}

func (g *generatedRoll) next() (*urnepb.Voter, error) {
	if g.produced == g.n {
		return nil, io.EOF
	}
	g.produced++
	return &urnepb.Voter{VoterId: fmt.Sprintf("r%06d", g.produced)}, nil
}

func sliceRoll(voters []*urnepb.Voter) func() (*urnepb.Voter, error) {
	return func() (*urnepb.Voter, error) {
		if len(voters) == 0 {
			return nil, io.EOF
		}
		v := voters[0]
		voters = voters[1:]
		return v, nil
	}
}

func TestImportVotersStreamsInChunks(t *testing.T) {
	tests := []struct {
		voters int
		chunks []int
	}{
		{10_000, slices.Repeat([]int{1000}, 10)},
		{2_500, []int{1000, 1000, 500}},
		{0, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.voters), func(t *testing.T) {
			fc := startCluster(t, 3)
			c := newTestClient(t, fc, nil, nil)
			roll := &generatedRoll{n: tt.voters}
			resp, err := c.ImportVoters(context.Background(), roll.next)
			if err != nil {
				t.Fatal(err)
			}
			if got := fc.ImportChunks(); !slices.Equal(got, tt.chunks) {
				t.Errorf("chunks received %v, want %v", got, tt.chunks)
			}
			if resp.GetImported() != uint64(tt.voters) || resp.GetTotalVoters() != uint64(100+tt.voters) {
				t.Errorf("response %v, want %d imported", resp, tt.voters)
			}
		})
	}
}

func TestImportVotersAgainChangesNothing(t *testing.T) {
	fc := startCluster(t, 3)
	c := newTestClient(t, fc, nil, nil)
	for range 2 {
		if _, err := c.ImportVoters(context.Background(), (&generatedRoll{n: 1500}).next); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.ImportVoters(context.Background(), (&generatedRoll{n: 1500}).next)
	if err != nil || resp.GetImported() != 0 || resp.GetUnchanged() != 1500 {
		t.Fatalf("third import = %v, %v; want 1500 unchanged", resp, err)
	}
}

func TestImportVotersRetriesBeforeTheSecondChunk(t *testing.T) {
	fc := startCluster(t, 3)
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "ImportVoters", Times: 1, Err: fakeurne.Status(urnepb.ReasonNoLeader, "election under way")})
	c := newTestClient(t, fc, nil, nil)
	resp, err := c.ImportVoters(context.Background(), (&generatedRoll{n: 800}).next)
	if err != nil || resp.GetImported() != 800 {
		t.Fatalf("import = %v, %v; want 800 imported after one retry", resp, err)
	}
	if got := len(fc.Calls("ImportVoters")); got != 2 {
		t.Errorf("%d streams opened, want 2", got)
	}
}

func TestImportVotersStopsOnRollError(t *testing.T) {
	fc := startCluster(t, 1)
	c := newTestClient(t, fc, nil, nil)
	roll := &generatedRoll{n: 5000}
	broken := errors.New("line 1502: bad e-mail")
	_, err := c.ImportVoters(context.Background(), func() (*urnepb.Voter, error) {
		if roll.produced == 1501 {
			return nil, broken
		}
		return roll.next()
	})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "voter 1502") {
		t.Fatalf("error = %v, want the roll's error at voter 1502", err)
	}
	if roll.produced != 1501 {
		t.Errorf("roll read %d voters, want to stop at the error", roll.produced)
	}
}
