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
)

// NewTransport is raft's network transport over layer, logging through logger.
func NewTransport(layer *Layer, logger *slog.Logger) *raft.NetworkTransport {
	if logger == nil {
		logger = slog.Default()
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  NewHCLogger(logger, "raft-net"),
	})
}
