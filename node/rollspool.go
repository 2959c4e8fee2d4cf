package node

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"iter"
	"os"
	"slices"
	"syscall"

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
type rollSpool struct {
	file   *os.File
	w      *bufio.Writer
	size   int64
	mapped []byte // the whole file, once written
	keys   *keyring.Keyring
	index  *fsm.RollIndex
	buf    []byte
	count  int
	// The entries are kept in chunks as the roll arrives, then in one slice to be sorted:
	// a single slice grown by append would copy a million entries again and again.
	chunks  [][]spoolEntry
	chunk   int // entries per chunk
	entries []spoolEntry
	ids     []byte // the voter ids, one after the other, so that entries hold no pointer
}

// spoolChunk is the number of entries per chunk, about 6 MiB of them.
const spoolChunk = 1 << 16

// spoolEntry is one voter of the spool. Entries of one voter keep the order they arrived in
// (off grows), the later one a rectification of the earlier.
type spoolEntry struct {
	voterKey   [sha256.Size]byte
	homonymKey [sha256.Size]byte
	off        int64
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

// finish writes out what is buffered and maps the file.
func (s *rollSpool) finish() error {
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

// add seals v into the spool, after the checks the state machine will make of it.
func (s *rollSpool) add(v *fsmpb.VoterRecord) error {
	if err := fsm.CheckVoter(v); err != nil {
		return fmt.Errorf("voter %d of the roll: %w", s.count+1, err)
	}
	plain, err := proto.Marshal(v)
	if err != nil {
		return err
	}
	s.buf = s.keys.AppendSeal(s.buf[:0], spoolAAD(s.size), plain)
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("spool the roll: %w", err)
	}
	e := spoolEntry{off: s.size, size: uint32(len(s.buf)), idOff: int64(len(s.ids)), idLen: uint8(len(v.VoterId))}
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
	s.count++
	s.size += int64(len(s.buf))
	return nil
}

func (s *rollSpool) voterID(e *spoolEntry) string {
	return string(s.ids[e.idOff : e.idOff+int64(e.idLen)])
}

// sortBy puts the entries in one slice, if they are not yet, and sorts them by key.
func (s *rollSpool) sortBy(key func(*spoolEntry) []byte) {
	if s.chunks != nil {
		s.entries = slices.Grow(s.entries, s.count-len(s.entries))
		for _, c := range s.chunks {
			s.entries = append(s.entries, c...)
		}
		s.chunks = nil
	}
	slices.SortFunc(s.entries, func(a, b spoolEntry) int {
		return cmp.Or(bytes.Compare(key(&a), key(&b)), cmp.Compare(a.off, b.off))
	})
}

func homonymKeyOf(e *spoolEntry) []byte { return e.homonymKey[:] }
func voterKeyOf(e *spoolEntry) []byte   { return e.voterKey[:] }

// checkHomonyms refuses a roll that holds two voters with the same name and date of birth,
// by sorting it on their homonym keys.
func (s *rollSpool) checkHomonyms() error {
	s.sortBy(homonymKeyOf)
	for i := 1; i < len(s.entries); i++ {
		a, b := &s.entries[i-1], &s.entries[i]
		if a.homonym && b.homonym && a.homonymKey == b.homonymKey && s.voterID(a) != s.voterID(b) {
			return fsm.HomonymError(s.voterID(b), s.voterID(a))
		}
	}
	return nil
}

// claims yields the roll's homonym keys in their order, n at a time.
func (s *rollSpool) claims(n int) iter.Seq[[]*fsmpb.HomonymClaim] {
	return func(yield func([]*fsmpb.HomonymClaim) bool) {
		s.sortBy(homonymKeyOf)
		var batch []*fsmpb.HomonymClaim
		for i := range s.entries {
			e := &s.entries[i]
			if !e.homonym || i > 0 && s.entries[i-1].homonymKey == e.homonymKey {
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
		s.sortBy(voterKeyOf)
		var batch []*fsmpb.VoterRecord
		for i := range s.entries {
			v, err := s.read(&s.entries[i])
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
