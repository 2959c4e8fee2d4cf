package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/grpc"
)

// ImportChunkSize is the number of voters per message of ImportVoters.
const ImportChunkSize = 1000

// ImportVoters streams the voter roll to the cluster. next returns one voter per call and
// io.EOF after the last; the roll is read chunk by chunk as it is sent, never held whole.
//
// Import is idempotent: a voter already on the roll with the same data is counted as
// unchanged. So when ImportVoters fails part way, run it again from the first voter. The
// client itself retries on another node only while the first chunk is still in memory, that is
// before it asked next for the second one.
func (c *Client) ImportVoters(ctx context.Context, next func() (*urnepb.Voter, error)) (*urnepb.ImportVotersResponse, error) {
	roll := &rollReader{next: next}
	first, err := roll.chunk()
	if err != nil {
		return nil, err
	}
	cl := leaderWrite("import voters")
	cl.stream = true
	var resp *urnepb.ImportVotersResponse
	err = c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = importStream(ctx, cc, first, roll)
		return err
	})
	return resp, err
}

// importStream sends first, then the rest of the roll, on one stream.
func importStream(ctx context.Context, cc *grpc.ClientConn, first []*urnepb.Voter, roll *rollReader) (*urnepb.ImportVotersResponse, error) {
	ctx, cancel := context.WithCancel(ctx) // aborts the stream if the roll fails to read
	defer cancel()
	stream, err := election(cc).ImportVoters(ctx)
	if err != nil {
		return nil, err
	}
	replayable := true
	for chunk := first; len(chunk) > 0; {
		if err := stream.Send(&urnepb.ImportVotersRequest{Voters: chunk}); err != nil {
			return nil, importFailure(stream, err, replayable, roll, cc.Target())
		}
		if chunk, err = roll.chunk(); err != nil {
			return nil, stop{err}
		}
		replayable = replayable && len(chunk) == 0
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, importFailure(stream, err, replayable, roll, cc.Target())
	}
	return resp, nil
}

// importFailure returns the status that broke the stream, final once voters beyond the first
// chunk were sent, since they cannot be sent again.
func importFailure(stream grpc.ClientStreamingClient[urnepb.ImportVotersRequest, urnepb.ImportVotersResponse], err error, replayable bool, roll *rollReader, endpoint string) error {
	if errors.Is(err, io.EOF) {
		// Send reports io.EOF; the status that closed the stream comes from CloseAndRecv.
		_, err = stream.CloseAndRecv()
	}
	if replayable {
		return err
	}
	return stop{fmt.Errorf("import voters: stream failed after %d voters were read from the roll; "+
		"the import is idempotent, run it again from the first voter: %w", roll.read, asError(err, endpoint))}
}

// rollReader pulls the roll from the caller's generator one chunk at a time.
type rollReader struct {
	next func() (*urnepb.Voter, error)
	done bool
	read int
}

// chunk returns up to ImportChunkSize voters; an empty chunk means the roll is exhausted.
func (r *rollReader) chunk() ([]*urnepb.Voter, error) {
	var out []*urnepb.Voter
	for len(out) < ImportChunkSize && !r.done {
		v, err := r.next()
		switch {
		case errors.Is(err, io.EOF):
			r.done = true
		case err != nil:
			return nil, fmt.Errorf("import voters: reading voter %d of the roll: %w", r.read+1, err)
		case v == nil:
			return nil, fmt.Errorf("import voters: voter %d of the roll is nil", r.read+1)
		default:
			r.read++
			out = append(out, v)
		}
	}
	return out, nil
}
