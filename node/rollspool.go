package node

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"iter"
	"os"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/keyring"
)

// rollSpool holds a roll being imported until it is whole and can be proposed in the order
// of its keys: each voter sealed under the node's keyring in a file of the data directory
// that has no name (it is unlinked as soon as it is created, so nothing is left behind by a
// crash), and its keys in memory, about a hundred bytes per voter. Once whole, the file is
// mapped and read from memory, in key order.
//
// The entries are kept in chunks as the roll arrives: a single slice grown by append would
// copy a million entries again and again. A chunk's voters are held in memory until it is
// full, then written to the file in the order of their voter keys, so that the file is a run
// of sorted chunks. The spool is read in order by sorting each chunk in place and merging
// them, which reads the file from the start of each chunk to its end rather than at random:
// a random read of a mapped page costs microseconds on a virtual machine, a million times.
type rollSpool struct {
	file   *os.File
	w      *bufio.Writer
	size   int64
	mapped []byte // the whole file, once written
	keys   *keyring.Keyring
	index  *fsm.RollIndex
	buf    []byte
	count  int
	// The marshalled voters of the last chunk while it is not yet written, one after the
	// other; every voter has an id, so it is empty only when every chunk is written.
	pending []byte
	chunks  [][]spoolEntry
	chunk   int        // entries per chunk
	order   spoolOrder // how every chunk is sorted
	ids     []byte     // the voter ids, one after the other, so that entries hold no pointer
}

// spoolChunk is the number of entries per chunk, about 6 MiB of them.
const spoolChunk = 1 << 16

// spoolOrder is the order the spool's chunks are sorted in.
type spoolOrder int

const (
	unsorted spoolOrder = iota // not known to be in one order: a chunk grew or was written
	byHomonymKey
	byVoterKey
)

// spoolEntry is one voter of the spool. Entries of one voter keep the order they arrived in
// (idOff grows), the later one a rectification of the earlier.
type spoolEntry struct {
	voterKey   [sha256.Size]byte
	homonymKey [sha256.Size]byte
	off        int64 // in the file, sealed; in pending, marshalled, until its chunk is written
	idOff      int64 // as wide as off: the ids of a large roll may pass 4 GiB, and the entry is no larger
	size       uint32
	idLen      uint8 // fsm.MaxIDSize is 128
	homonym    bool  // the voter has a homonym key (a date of birth)
}

func newRollSpool(dir string, keys *keyring.Keyring, index *fsm.RollIndex) (*rollSpool, error) {
	f, err := os.CreateTemp(dir, "import-*.spool")
	if err != nil {
		return nil, fmt.Errorf("spool the roll: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("spool the roll: %w", err)
	}
	return &rollSpool{file: f, w: bufio.NewWriterSize(f, 1<<20), keys: keys, index: index, chunk: spoolChunk}, nil
}

func (s *rollSpool) close() {
	if s.mapped != nil {
		_ = syscall.Munmap(s.mapped)
	}
	_ = s.file.Close()
}

// finish writes out what is pending and maps the file.
func (s *rollSpool) finish() error {
	if len(s.pending) > 0 {
		if err := s.writeChunk(); err != nil {
			return err
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool the roll: %w", err)
	}
	if s.size == 0 || s.mapped != nil {
		return nil
	}
	m, err := syscall.Mmap(int(s.file.Fd()), 0, int(s.size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map the spooled roll: %w", err)
	}
	s.mapped = m
	return nil
}

// spoolAAD binds a sealed voter to its place in the spool.
func spoolAAD(off int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("roll-spool/"), uint64(off))
}

// add puts v into the spool, after the checks the state machine will make of it.
func (s *rollSpool) add(v *fsmpb.VoterRecord) error {
	if err := fsm.CheckVoter(v); err != nil {
		return fmt.Errorf("voter %d of the roll: %w", s.count+1, err)
	}
	start := len(s.pending)
	pending, err := proto.MarshalOptions{}.MarshalAppend(s.pending, v)
	if err != nil {
		return err
	}
	s.pending = pending
	e := spoolEntry{off: int64(start), size: uint32(len(pending) - start), idOff: int64(len(s.ids)), idLen: uint8(len(v.VoterId))}
	s.ids = append(s.ids, v.VoterId...)
	copy(e.voterKey[:], s.index.VoterKey(v.VoterId))
	if hk := s.index.HomonymKey(v); hk != nil {
		e.homonym = true
		copy(e.homonymKey[:], hk)
	}
	if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == s.chunk {
		s.chunks = append(s.chunks, make([]spoolEntry, 0, s.chunk))
	}
	s.chunks[len(s.chunks)-1] = append(s.chunks[len(s.chunks)-1], e)
	s.order = unsorted
	s.count++
	if len(s.chunks[len(s.chunks)-1]) == s.chunk {
		return s.writeChunk()
	}
	return nil
}

// writeChunk seals the last chunk's voters into the file, in the order of their voter keys.
func (s *rollSpool) writeChunk() error {
	c := s.chunks[len(s.chunks)-1]
	slices.SortFunc(c, func(a, b spoolEntry) int { return byVoterKey.compare(&a, &b) })
	for i := range c {
		e := &c[i]
		s.buf = s.keys.AppendSeal(s.buf[:0], spoolAAD(s.size), s.pending[e.off:e.off+int64(e.size)])
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("spool the roll: %w", err)
		}
		e.off, e.size = s.size, uint32(len(s.buf))
		s.size += int64(len(s.buf))
	}
	s.pending = s.pending[:0]
	s.order = unsorted
	return nil
}

func (s *rollSpool) voterID(e *spoolEntry) string {
	return string(s.ids[e.idOff : e.idOff+int64(e.idLen)])
}

// keyOf is the key the entries are sorted by in order o.
func (o spoolOrder) keyOf(e *spoolEntry) []byte {
	if o == byHomonymKey {
		return e.homonymKey[:]
	}
	return e.voterKey[:]
}

// compare orders two entries by key, then in the order they arrived, so that the entries of
// one voter keep that order.
func (o spoolOrder) compare(a, b *spoolEntry) int {
	return cmp.Or(bytes.Compare(o.keyOf(a), o.keyOf(b)), cmp.Compare(a.idOff, b.idOff))
}

// inOrder yields every entry in order o: it sorts each chunk in place, on every processor,
// then merges the chunks.
func (s *rollSpool) inOrder(o spoolOrder) iter.Seq[*spoolEntry] {
	if s.order != o {
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for _, c := range s.chunks {
			g.Go(func() error {
				slices.SortFunc(c, func(a, b spoolEntry) int { return o.compare(&a, &b) })
				return nil
			})
		}
		_ = g.Wait()
		s.order = o
	}
	return func(yield func(*spoolEntry) bool) {
		m := &spoolMerge{order: o}
		for _, c := range s.chunks {
			if len(c) > 0 {
				m.runs = append(m.runs, c)
			}
		}
		heap.Init(m)
		for m.Len() > 0 {
			run := m.runs[0]
			if !yield(&run[0]) {
				return
			}
			if m.runs[0] = run[1:]; len(run) == 1 {
				heap.Pop(m)
			} else {
				heap.Fix(m, 0)
			}
		}
	}
}

// spoolMerge is a heap of sorted runs of entries, the run with the least first entry on top.
type spoolMerge struct {
	order spoolOrder
	runs  [][]spoolEntry
}

func (m *spoolMerge) Len() int           { return len(m.runs) }
func (m *spoolMerge) Less(i, j int) bool { return m.order.compare(&m.runs[i][0], &m.runs[j][0]) < 0 }
func (m *spoolMerge) Swap(i, j int)      { m.runs[i], m.runs[j] = m.runs[j], m.runs[i] }
func (m *spoolMerge) Push(x any)         { m.runs = append(m.runs, x.([]spoolEntry)) }
func (m *spoolMerge) Pop() any {
	last := m.runs[len(m.runs)-1]
	m.runs = m.runs[:len(m.runs)-1]
	return last
}

// checkHomonyms refuses a roll that holds two voters with the same name and date of birth,
// by reading it in the order of their homonym keys.
func (s *rollSpool) checkHomonyms() error {
	var prev *spoolEntry
	for e := range s.inOrder(byHomonymKey) {
		if prev != nil && prev.homonym && e.homonym && prev.homonymKey == e.homonymKey && s.voterID(prev) != s.voterID(e) {
			return fsm.HomonymError(s.voterID(e), s.voterID(prev))
		}
		prev = e
	}
	return nil
}

// claims yields the roll's homonym keys in their order, n at a time.
func (s *rollSpool) claims(n int) iter.Seq[[]*fsmpb.HomonymClaim] {
	return func(yield func([]*fsmpb.HomonymClaim) bool) {
		var batch []*fsmpb.HomonymClaim
		var prev *spoolEntry
		for e := range s.inOrder(byHomonymKey) {
			same := prev != nil && prev.homonymKey == e.homonymKey
			prev = e
			if !e.homonym || same {
				continue // checkHomonyms let through only one voter per key
			}
			batch = append(batch, &fsmpb.HomonymClaim{Key: bytes.Clone(e.homonymKey[:]), VoterId: s.voterID(e)})
			if len(batch) == n {
				if !yield(batch) {
					return
				}
				batch = nil
			}
		}
		if len(batch) > 0 {
			yield(batch)
		}
	}
}

// voters yields the roll's voters in the order of their keys, n at a time.
func (s *rollSpool) voters(n int) iter.Seq2[[]*fsmpb.VoterRecord, error] {
	return func(yield func([]*fsmpb.VoterRecord, error) bool) {
		if err := s.finish(); err != nil {
			yield(nil, err)
			return
		}
		var batch []*fsmpb.VoterRecord
		for e := range s.inOrder(byVoterKey) {
			v, err := s.read(e)
			if err != nil {
				yield(nil, err)
				return
			}
			batch = append(batch, v)
			if len(batch) == n {
				if !yield(batch, nil) {
					return
				}
				batch = nil
			}
		}
		if len(batch) > 0 {
			yield(batch, nil)
		}
	}
}

func (s *rollSpool) read(e *spoolEntry) (*fsmpb.VoterRecord, error) {
	plain, err := s.keys.Open(spoolAAD(e.off), s.mapped[e.off:e.off+int64(e.size)])
	if err != nil {
		return nil, fmt.Errorf("read the spooled roll: %w", err)
	}
	v := &fsmpb.VoterRecord{}
	if err := proto.Unmarshal(plain, v); err != nil {
		return nil, fmt.Errorf("read the spooled roll: %w", err)
	}
	return v, nil
}
