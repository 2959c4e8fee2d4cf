package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/urne-vote/urne/transport/urnepb"
)

// BackupStream is the state of the cluster at one index, streaming from the leader. Read
// returns io.EOF only after the leader said the stream is complete and the sizes agree.
type BackupStream struct {
	info     *urnepb.BackupInfo
	stream   grpc.ServerStreamingClient[urnepb.BackupChunk]
	cancel   context.CancelFunc
	endpoint string
	pending  []byte
	received uint64
	done     bool
	err      error
}

// Backup asks the leader for a consistent copy of the state and returns once it has announced
// the index; the caller reads the stream and closes it. Finding the leader is retried; once
// data flows, a broken stream is an error and must be started again.
func (c *Client) Backup(ctx context.Context) (*BackupStream, error) {
	var out *BackupStream
	cl := call{op: "backup", route: route{kind: toLeader}, policy: idempotent, stream: true}
	err := c.do(ctx, cl, func(ctx context.Context, cc *grpc.ClientConn) error {
		ctx, cancel := context.WithCancel(ctx)
		stream, err := operator(cc).Backup(ctx, &urnepb.BackupRequest{})
		if err != nil {
			cancel()
			return err
		}
		first, err := stream.Recv()
		if err == nil && first.GetInfo() == nil {
			err = stop{fmt.Errorf("backup: the node at %s sent data before naming the index", cc.Target())}
		}
		if err != nil {
			cancel()
			return err
		}
		out = &BackupStream{info: first.GetInfo(), stream: stream, cancel: cancel, endpoint: cc.Target()}
		return nil
	})
	return out, err
}

// Info names the election, the index and the leader of the copy.
func (b *BackupStream) Info() *urnepb.BackupInfo { return b.info }

// Received is the number of state bytes read so far.
func (b *BackupStream) Received() uint64 { return b.received }

func (b *BackupStream) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return 0, io.EOF
		}
		b.err = b.next()
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

func (b *BackupStream) next() error {
	msg, err := b.stream.Recv()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("backup: the stream from %s ended after %d bytes without its final message", b.endpoint, b.received)
	}
	if err != nil {
		return fmt.Errorf("backup: the stream from %s broke after %d bytes: %w", b.endpoint, b.received, asError(err, b.endpoint))
	}
	if msg.GetDone() {
		if msg.GetDoneSize() != b.received {
			return fmt.Errorf("backup: the leader sent %d bytes, %d arrived", msg.GetDoneSize(), b.received)
		}
		b.done = true
		return nil
	}
	b.pending = msg.GetData()
	b.received += uint64(len(b.pending))
	return nil
}

// Close ends the stream; reading after it fails.
func (b *BackupStream) Close() error {
	b.cancel()
	if b.err == nil && !b.done {
		b.err = errors.New("backup: stream closed")
	}
	return nil
}
