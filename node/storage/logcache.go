package storage

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// LogCache keeps the most recent raft entries in memory in front of a log store, like
// raft.LogCache, but bounded by bytes as well as by count: the leader replicates and the state
// machine applies from it without reading the disk. Counting entries alone let an import,
// whose entries weigh a megabyte each where a cast batch weighs a few kilobytes, keep the
// whole roll resident on every node. An entry the bound evicted is read from the store.
type LogCache struct {
	store    raft.LogStore
	maxBytes int

	mu    sync.RWMutex
	ring  []*raft.Log
	bytes int    // weight of the entries in ring
	low   uint64 // no entry below low is cached
	high  uint64 // last index stored
}

// logOverhead is the weight of an entry besides its payload.
const logOverhead = 128

func logWeight(l *raft.Log) int { return logOverhead + len(l.Data) + len(l.Extensions) }

// NewLogCache caches up to capacity entries weighing up to maxBytes in all in front of store.
func NewLogCache(capacity, maxBytes int, store raft.LogStore) (*LogCache, error) {
	if capacity <= 0 || maxBytes <= 0 {
		return nil, errors.New("log cache: capacity and byte bound must be positive")
	}
	return &LogCache{store: store, maxBytes: maxBytes, ring: make([]*raft.Log, capacity)}, nil
}

// IsMonotonic answers as the store does (raft type-asserts for raft.MonotonicLogStore).
func (c *LogCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// GetLog answers from memory when the entry is cached, else from the store.
func (c *LogCache) GetLog(index uint64, log *raft.Log) error {
	c.mu.RLock()
	cached := c.ring[index%uint64(len(c.ring))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == index {
		*log = *cached
		return nil
	}
	return c.store.GetLog(index, log)
}

func (c *LogCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores logs, then caches them, evicting the oldest entries beyond the bounds.
// The newest entry stays cached even when it alone weighs more than the bound.
func (c *LogCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return fmt.Errorf("unable to store logs within log store, err: %q", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		slot := l.Index % uint64(len(c.ring))
		if old := c.ring[slot]; old != nil {
			c.bytes -= logWeight(old)
		}
		c.ring[slot] = l
		c.bytes += logWeight(l)
		if l.Index < c.low || c.high == 0 {
			c.low = l.Index
		}
		c.high = max(c.high, l.Index)
	}
	if n := uint64(len(c.ring)); c.high >= n {
		c.low = max(c.low, c.high-n+1) // the slots below were overwritten, their weight taken off
	}
	for c.bytes > c.maxBytes && c.low < c.high {
		slot := c.low % uint64(len(c.ring))
		if old := c.ring[slot]; old != nil && old.Index == c.low {
			c.bytes -= logWeight(old)
			c.ring[slot] = nil
		}
		c.low++
	}
	return nil
}

func (c *LogCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }
func (c *LogCache) LastIndex() (uint64, error)  { return c.store.LastIndex() }

// DeleteRange empties the cache, then deletes from the store.
func (c *LogCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	clear(c.ring)
	c.bytes, c.low, c.high = 0, 0, 0
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}
