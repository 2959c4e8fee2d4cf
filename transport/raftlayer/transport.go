package raftlayer

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// Transport settings: a small pool, since a node talks to a handful of peers, and a timeout that
// covers one inter-datacenter round trip with room to spare.
const (
	transportMaxPool = 3
	transportTimeout = 10 * time.Second
	// transportMaxInFlight of 1 turns raft's pipelined replication off. With it on, a follower
	// that refuses one append (a failed disk write, a log mismatch after a leader change)
	// while more appends are queued can deadlock the leader's replication to it: heartbeats
	// go on, so no election heals it, and the follower never gets another entry
	// (hashicorp/raft issue 612). Batching (MaxAppendEntries) keeps throughput without it.
	transportMaxInFlight = 1
)

// NewTransport is raft's network transport over layer, logging through logger.
func NewTransport(layer *Layer, logger *slog.Logger) *raft.NetworkTransport {
	if logger == nil {
		logger = slog.Default()
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          layer,
		MaxPool:         transportMaxPool,
		MaxRPCsInFlight: transportMaxInFlight,
		Timeout:         transportTimeout,
		Logger:          NewHCLogger(logger, "raft-net"),
	})
}
