package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Snapshot stream, version 1. It is plaintext: the snapshot store seals the whole stream.
//
//	header  "URNESNAP" | version u32 | applied index u64
//	record  0x01 | bucket len u8 | bucket | key len u16 | key | value len u32 | value
//	trailer 0x00 | record count u64 | SHA-256 of every byte before it
//
// Integers are big-endian; records come in (bucket, key) order, strictly increasing.
const (
	snapshotMagic    = "URNESNAP"
	snapshotVersion  = 1
	tagRecord        = 0x01
	tagEnd           = 0x00
	maxSnapshotKey   = 1 << 10
	maxSnapshotValue = 1 << 20
	snapshotBufSize  = 64 << 10
)

// snapshot is a point-in-time view: a bbolt read transaction opened by FullSnapshot.
type snapshot struct {
	tx      *bolt.Tx
	sealer  Sealer
	index   uint64
	release sync.Once
}

// A reference is what raft's snapshots hold. The state database is durable (every apply is
// an fsync'd transaction) and carries its applied index, so a snapshot needs to name only
// the index it covers: compacting the log up to there loses nothing. A full copy is made
// only when a follower needs one (ExpandSnapshot), not at every snapshot.
//
//	reference  "URNESREF" | version u32 | applied index u64
const (
	referenceMagic   = "URNESREF"
	referenceVersion = 1
	referenceSize    = 20
)

type reference uint64

// Snapshot commits what was applied and returns a reference to the state database at its
// applied index: raft may then compact its log up to there. Raft calls it between applies,
// so nothing is applied while it runs.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if f.closed() {
		return nil, ErrClosed
	}
	f.commit()
	return reference(f.applied.Load()), nil
}

func (r reference) Persist(sink raft.SnapshotSink) error {
	b := append([]byte(referenceMagic), make([]byte, 12)...)
	binary.BigEndian.PutUint32(b[8:], referenceVersion)
	binary.BigEndian.PutUint64(b[12:], uint64(r))
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot reference at index %d: %w", r, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: close snapshot sink: %w", err)
	}
	return nil
}

func (reference) Release() {}

// SnapshotReference returns the index a snapshot's bytes refer to, and ok=false when they
// are not a reference (a full snapshot, or anything else).
func (f *FSM) SnapshotReference(b []byte) (index uint64, ok bool) {
	if len(b) != referenceSize || string(b[:8]) != referenceMagic || binary.BigEndian.Uint32(b[8:]) != referenceVersion {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[12:]), true
}

// ExpandSnapshot opens a full snapshot stream of the state database, which must have applied
// index at least, with its exact size (raft checks the bytes it sends against it). A first
// pass over one read transaction counts the bytes, a second streams them; closing the reader
// ends the transaction. The stream's own index may be beyond the reference's: the entries in
// between are then skipped when they come (ApplyBatch ignores what it already applied).
func (f *FSM) ExpandSnapshot(atLeast uint64) (int64, io.ReadCloser, error) {
	s, err := f.openSnapshot()
	if err != nil {
		return 0, nil, err
	}
	if s.index < atLeast {
		s.Release()
		return 0, nil, fmt.Errorf("%w: the state database is at index %d, behind the snapshot that refers to it (index %d): "+
			"this node cannot rebuild its state by itself", ErrCorrupt, s.index, atLeast)
	}
	var count countingWriter
	if err := writeSnapshot(&count, s.tx, s.sealer, s.index); err != nil {
		s.Release()
		return 0, nil, fmt.Errorf("fsm: size the snapshot at index %d: %w", s.index, err)
	}
	f.logger.Info("streaming a full copy of the state database for a snapshot", "index", s.index, "reference_index", atLeast, "bytes", count.n)
	pr, pw := io.Pipe()
	go func() {
		defer s.Release()
		pw.CloseWithError(writeSnapshot(pw, s.tx, s.sealer, s.index))
	}()
	return count.n, pr, nil
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// FullSnapshot opens a read transaction; Persist streams the whole state from it while Apply
// goes on. Backups take it.
func (f *FSM) FullSnapshot() (raft.FSMSnapshot, error) { return f.openSnapshot() }

func (f *FSM) openSnapshot() (*snapshot, error) {
	f.commit()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("fsm: begin snapshot transaction: %w", err)
	}
	index, err := readAppliedIndex(tx, f.sealer)
	if err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("fsm: snapshot: %w", err)
	}
	return &snapshot{tx: tx, sealer: f.sealer, index: index}, nil
}

// Persist writes the stream to sink, then closes it (or cancels it on error).
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.tx, s.sealer, s.index); err != nil {
		sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot at index %d: %w", s.index, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: close snapshot sink: %w", err)
	}
	return nil
}

// Release ends the read transaction; raft calls it once, but twice is harmless.
func (s *snapshot) Release() {
	s.release.Do(func() { _ = s.tx.Rollback() })
}

func writeSnapshot(w io.Writer, tx *bolt.Tx, s Sealer, index uint64) error {
	bw := bufio.NewWriterSize(w, snapshotBufSize)
	h := sha256.New()
	out := io.MultiWriter(bw, h)
	header := append([]byte(snapshotMagic), make([]byte, 12)...)
	binary.BigEndian.PutUint32(header[8:], snapshotVersion)
	binary.BigEndian.PutUint64(header[12:], index)
	if _, err := out.Write(header); err != nil {
		return err
	}
	var count uint64
	var buf []byte
	err := walkPlain(tx, s, func(bucket, key, plain []byte) error {
		count++
		buf = appendRecord(buf[:0], bucket, key, plain)
		_, err := out.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	trailer := binary.BigEndian.AppendUint64([]byte{tagEnd}, count)
	if _, err := out.Write(trailer); err != nil {
		return err
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return err
	}
	return bw.Flush()
}

func appendRecord(b, bucket, key, value []byte) []byte {
	b = append(b, tagRecord, byte(len(bucket)))
	b = append(b, bucket...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
	return append(b, value...)
}

// snapshotRecord is one (bucket, key, plaintext value) of the stream.
type snapshotRecord struct {
	bucket, key, value []byte
}

// snapshotReader parses a stream, hashing what it reads, and refuses anything out of
// bounds, out of order or unknown before it allocates for it.
type snapshotReader struct {
	r       *bufio.Reader
	h       hash.Hash
	index   uint64
	count   uint64
	prev    snapshotRecord
	started bool
}

func newSnapshotReader(r io.Reader) (*snapshotReader, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(r, snapshotBufSize), h: sha256.New()}
	header, err := sr.read(20)
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(header[:8]) != snapshotMagic {
		return nil, fmt.Errorf("%w: not an Urne state snapshot (magic %q)", ErrCorrupt, header[:8])
	}
	if v := binary.BigEndian.Uint32(header[8:]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot format version %d, this node reads version %d", ErrCorrupt, v, snapshotVersion)
	}
	sr.index = binary.BigEndian.Uint64(header[12:])
	return sr, nil
}

// read returns the next n bytes, hashed; a short stream is ErrCorrupt.
func (sr *snapshotReader) read(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(sr.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: snapshot truncated", ErrCorrupt)
		}
		return nil, err
	}
	sr.h.Write(b)
	return b, nil
}

func (sr *snapshotReader) readUint(n int) (uint64, error) {
	b, err := sr.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v, nil
}

// next returns the next record, or ok=false once the trailer has been read and verified.
// Records of a retired bucket (a stream of an earlier version) are counted and skipped.
func (sr *snapshotReader) next() (rec snapshotRecord, ok bool, err error) {
	for {
		rec, ok, err = sr.nextAny()
		if !ok || err != nil || !retired(rec.bucket) {
			return rec, ok, err
		}
	}
}

func (sr *snapshotReader) nextAny() (rec snapshotRecord, ok bool, err error) {
	tag, err := sr.readUint(1)
	if err != nil {
		return rec, false, err
	}
	switch tag {
	case tagEnd:
		return rec, false, sr.finish()
	case tagRecord:
	default:
		return rec, false, fmt.Errorf("%w: unknown record tag %#x after %d records", ErrCorrupt, tag, sr.count)
	}
	if rec, err = sr.readRecord(); err != nil {
		return rec, false, fmt.Errorf("record %d: %w", sr.count, err)
	}
	sr.count++
	return rec, true, nil
}

func (sr *snapshotReader) readRecord() (rec snapshotRecord, err error) {
	if rec.bucket, err = sr.readField(1, 1, 16); err != nil {
		return rec, err
	}
	if bucketRank(rec.bucket) < 0 && !retired(rec.bucket) {
		return rec, fmt.Errorf("%w: unknown bucket %q", ErrCorrupt, rec.bucket)
	}
	if rec.key, err = sr.readField(2, 1, maxSnapshotKey); err != nil {
		return rec, err
	}
	if rec.value, err = sr.readField(4, 0, maxSnapshotValue); err != nil {
		return rec, err
	}
	if retired(rec.bucket) {
		return rec, nil
	}
	if sr.started && !recordAfter(rec, sr.prev) {
		return rec, fmt.Errorf("%w: records out of order at bucket %s", ErrCorrupt, rec.bucket)
	}
	sr.prev, sr.started = rec, true
	return rec, nil
}

// readField reads a length-prefixed field of least to limit bytes.
func (sr *snapshotReader) readField(lenSize, least, limit int) ([]byte, error) {
	n, err := sr.readUint(lenSize)
	if err != nil {
		return nil, err
	}
	if n < uint64(least) || n > uint64(limit) {
		return nil, fmt.Errorf("%w: field of %d bytes, want %d to %d", ErrCorrupt, n, least, limit)
	}
	return sr.read(int(n))
}

// finish checks the record count and the hash, and that nothing follows.
func (sr *snapshotReader) finish() error {
	count, err := sr.readUint(8)
	if err != nil {
		return err
	}
	if count != sr.count {
		return fmt.Errorf("%w: trailer counts %d records, the stream holds %d", ErrCorrupt, count, sr.count)
	}
	want := sr.h.Sum(nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(sr.r, got); err != nil {
		return fmt.Errorf("%w: snapshot truncated in its checksum", ErrCorrupt)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: bytes after the snapshot trailer", ErrCorrupt)
	}
	return nil
}

func bucketRank(name []byte) int {
	for i, b := range allBuckets {
		if bytes.Equal(name, b) {
			return i
		}
	}
	return -1
}

func recordAfter(rec, prev snapshotRecord) bool {
	rb, pb := bucketRank(rec.bucket), bucketRank(prev.bucket)
	if rb != pb {
		return rb > pb
	}
	return bytes.Compare(rec.key, prev.key) > 0
}
