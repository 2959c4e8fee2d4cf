package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// The content of an archive is the state machine's snapshot stream, version 1, exactly as the
// leader's FSM.Snapshot persisted it (see fsm/snapshot.go):
//
//	header  "URNESNAP" | version u32 | applied index u64
//	record  0x01 | bucket len u8 | bucket | key len u16 | key | value len u32 | value
//	trailer 0x00 | record count u64 | SHA-256 of every byte before it
//
// ReadState parses it without decoding the records, to check an archive and compute the state
// digest at the archive's index; FSM.Restore remains the judge of what the records mean.
const (
	stateMagic    = "URNESNAP"
	stateVersion  = 1
	maxStateKey   = 1 << 10
	maxStateValue = 1 << 20
	maxBucketName = 16
)

var (
	metaBucket  = []byte("meta")
	countersKey = []byte("counters")
)

// State is what ReadState learned from a snapshot stream.
type State struct {
	Index   uint64
	Records uint64
	Size    uint64
	// Digest is the state digest at Index, computed as fsm.FSM.Digest computes it on a node.
	Digest                       []byte
	Voters, Emargements, Ballots uint64
}

// stateReader parses a snapshot stream, hashing what it reads for the trailer and the digest.
type stateReader struct {
	r      *bufio.Reader
	trail  hash.Hash // SHA-256 of the stream, for its trailer
	digest hash.Hash // the state digest
	st     State
	// onRecord, if set, is called with every record in stream order (ReadStateFunc).
	onRecord func(bucket, key, value []byte) error
}

// ReadState reads a whole snapshot stream from r and checks its header, framing, record count
// and checksum, and that nothing follows the trailer.
func ReadState(r io.Reader) (State, error) {
	return ReadStateFunc(r, nil)
}

// ReadStateFunc is ReadState calling fn, if not nil, with every (bucket, key, value) record
// in stream order, before the trailer is checked: a caller must throw away what it built
// from the records when ReadStateFunc fails. The slices are the caller's to keep. An error
// from fn stops the read and is returned as it is.
func ReadStateFunc(r io.Reader, fn func(bucket, key, value []byte) error) (State, error) {
	sr := &stateReader{r: bufio.NewReaderSize(r, 64<<10), trail: sha256.New(), digest: sha256.New(), onRecord: fn}
	st, err := sr.run()
	var src sourceError
	switch {
	case errors.As(err, &src):
		return st, src.err // the archive (or the stream under it) failed, not the snapshot format
	case err != nil:
		return st, fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	return st, nil
}

// sourceError is a failure of the reader under the snapshot stream.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }

func (sr *stateReader) run() (State, error) {
	header, err := sr.read(20)
	if err != nil {
		return sr.st, err
	}
	if string(header[:8]) != stateMagic {
		return sr.st, fmt.Errorf("it starts with %q, not %q", header[:8], stateMagic)
	}
	if v := binary.BigEndian.Uint32(header[8:]); v != stateVersion {
		return sr.st, fmt.Errorf("snapshot format version %d; this build reads version %d", v, stateVersion)
	}
	sr.st.Index = binary.BigEndian.Uint64(header[12:])
	for {
		tag, err := sr.read(1)
		if err != nil {
			return sr.st, err
		}
		switch tag[0] {
		case 0x00:
			return sr.st, sr.finish()
		case 0x01:
			if err := sr.record(); err != nil {
				return sr.st, fmt.Errorf("record %d: %w", sr.st.Records, err)
			}
			sr.st.Records++
		default:
			return sr.st, fmt.Errorf("unknown record tag %#x after %d records", tag[0], sr.st.Records)
		}
	}
}

// record reads one (bucket, key, value) and adds it to the digest.
func (sr *stateReader) record() error {
	bucket, err := sr.field(1, 1, maxBucketName)
	if err != nil {
		return err
	}
	key, err := sr.field(2, 1, maxStateKey)
	if err != nil {
		return err
	}
	value, err := sr.field(4, 0, maxStateValue)
	if err != nil {
		return err
	}
	for _, f := range [][]byte{bucket, key, value} {
		sr.digest.Write(binary.AppendUvarint(nil, uint64(len(f))))
		sr.digest.Write(f)
	}
	if bytes.Equal(bucket, metaBucket) && bytes.Equal(key, countersKey) {
		if err := sr.counters(value); err != nil {
			return err
		}
	}
	if sr.onRecord != nil {
		if err := sr.onRecord(bucket, key, value); err != nil {
			return sourceError{err}
		}
	}
	return nil
}

func (sr *stateReader) counters(value []byte) error {
	var c fsmpb.Counters
	if err := proto.Unmarshal(value, &c); err != nil {
		return fmt.Errorf("the counters record does not decode: %v", err)
	}
	sr.st.Voters, sr.st.Emargements, sr.st.Ballots = c.Voters, c.Emargements, c.Ballots
	return nil
}

// field reads a length-prefixed field of least to most bytes.
func (sr *stateReader) field(lenSize, least, most int) ([]byte, error) {
	b, err := sr.read(lenSize)
	if err != nil {
		return nil, err
	}
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	if n < uint64(least) || n > uint64(most) {
		return nil, fmt.Errorf("field of %d bytes, want %d to %d", n, least, most)
	}
	return sr.read(int(n))
}

// finish checks the trailer: record count, checksum, and the end of the stream.
func (sr *stateReader) finish() error {
	b, err := sr.read(8)
	if err != nil {
		return err
	}
	if count := binary.BigEndian.Uint64(b); count != sr.st.Records {
		return fmt.Errorf("the trailer counts %d records, the stream holds %d", count, sr.st.Records)
	}
	want := sr.trail.Sum(nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(sr.r, got); err != nil {
		return truncated(err)
	}
	sr.st.Size += uint64(len(got))
	if !bytes.Equal(got, want) {
		return errors.New("the snapshot's checksum does not match its records")
	}
	if _, err := sr.r.ReadByte(); !errors.Is(err, io.EOF) {
		if err != nil {
			return sourceError{err}
		}
		return errors.New("bytes follow the snapshot trailer")
	}
	sr.digest.Write(binary.BigEndian.AppendUint64(nil, sr.st.Index))
	sr.st.Digest = sr.digest.Sum(nil)
	return nil
}

// read returns the next n bytes in a new slice, hashed for the trailer.
func (sr *stateReader) read(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return nil, truncated(err)
	}
	sr.trail.Write(b)
	sr.st.Size += uint64(n)
	return b, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the snapshot stream is truncated")
	}
	return sourceError{err}
}
