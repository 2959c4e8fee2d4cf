package node

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/transport/urnepb"
)

// backupChunkSize is the data carried by one streamed backup message.
const backupChunkSize = 256 << 10

// stateHeaderSize is the size of the state snapshot header: magic (8), version (4), index (8).
const stateHeaderSize = 20

// Backup streams the state machine at one applied index. It runs on the leader only, after a
// read barrier, so the copy holds every write acknowledged before the call; the snapshot's
// read transaction lets applies go on while it streams.
func (s *operatorService) Backup(_ *urnepb.BackupRequest, stream urnepb.Operator_BackupServer) (err error) {
	n := s.n
	if n.raft.State() != raft.Leader {
		return toStatus(fmt.Errorf("%w: backups stream from the leader; this node is %s", ErrNoLeader, n.raft.State()))
	}
	if err := n.ReadBarrier(stream.Context(), urnepb.Consistency_CONSISTENCY_LINEARIZABLE); err != nil {
		return toStatus(err)
	}
	snap, err := n.fsm.FullSnapshot()
	if err != nil {
		return toStatus(fmt.Errorf("backup: %w", err))
	}
	defer snap.Release()
	sink := &backupSink{n: n, stream: stream, takenAt: time.Now()}
	defer func() {
		n.recordDownload(stream.Context(), "backup", "state of the election", fmt.Sprintf("at index %d, %d bytes", sink.index, sink.size), err)
	}()
	if err := snap.Persist(sink); err != nil {
		return toStatus(fmt.Errorf("backup: %w", err))
	}
	if sink.err != nil {
		return toStatus(sink.err)
	}
	n.log.Info("backup streamed", "index", sink.index, "bytes", sink.size)
	return nil
}

// backupSink sends what the snapshot persists, in chunks, after a first message naming the
// index, which it reads from the stream's own header.
type backupSink struct {
	n        *Node
	stream   urnepb.Operator_BackupServer
	takenAt  time.Time
	buf      []byte
	index    uint64
	size     uint64
	sentInfo bool
	err      error
}

func (b *backupSink) ID() string { return "backup" }

func (b *backupSink) Cancel() error { return nil }

func (b *backupSink) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	b.size += uint64(len(p))
	if !b.sentInfo && len(b.buf) >= stateHeaderSize {
		b.err = b.sendInfo()
	}
	for b.err == nil && b.sentInfo && len(b.buf) >= backupChunkSize {
		b.err = b.stream.Send(&urnepb.BackupChunk{Data: b.buf[:backupChunkSize]})
		b.buf = append(b.buf[:0], b.buf[backupChunkSize:]...)
	}
	return len(p), b.err
}

// Close sends what is left and the final message.
func (b *backupSink) Close() error {
	if b.err == nil && !b.sentInfo {
		b.err = fmt.Errorf("backup: the state stream is %d bytes, shorter than its header", len(b.buf))
	}
	if b.err == nil && len(b.buf) > 0 {
		b.err = b.stream.Send(&urnepb.BackupChunk{Data: b.buf})
	}
	if b.err == nil {
		b.err = b.stream.Send(&urnepb.BackupChunk{Done: true, DoneSize: b.size})
	}
	return b.err
}

func (b *backupSink) sendInfo() error {
	b.index = binary.BigEndian.Uint64(b.buf[12:stateHeaderSize])
	b.sentInfo = true
	n := b.n
	return b.stream.Send(&urnepb.BackupChunk{Info: &urnepb.BackupInfo{
		ElectionId: n.cfg.ElectionID, NodeId: n.cfg.NodeID, Index: b.index, Term: n.termAt(b.index),
		TakenAtUnixNano: b.takenAt.UnixNano(), NodeVersion: Version,
	}})
}

// termAt returns the term of the entry at index: from the log, else from a snapshot ending
// there, else the current term (the entry was compacted into an older snapshot).
func (n *Node) termAt(index uint64) uint64 {
	var l raft.Log
	if err := n.stores.log.GetLog(index, &l); err == nil {
		return l.Term
	}
	if metas, err := n.stores.snaps.List(); err == nil {
		for _, m := range metas {
			if m.Index == index {
				return m.Term
			}
		}
	}
	return n.currentTerm()
}
