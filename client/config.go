package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config. With them a write rides through a leader failover: 20 attempts with a
// jittered backoff growing from 100 ms to 1 s span about 15 seconds.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxAttempts    = 20
	DefaultBackoff        = 100 * time.Millisecond
	// maxBackoffFactor caps the backoff at this multiple of Config.Backoff.
	maxBackoffFactor = 10
)

// Config says how to reach a cluster. Zero durations and counts take the defaults above.
type Config struct {
	// Endpoints are the gRPC addresses (host:port) of the nodes; any of them will do.
	Endpoints []string
	// TLS is the client's TLS configuration; see NewTLSConfig and LoadClusterDir.
	TLS *tls.Config
	// DialTimeout bounds the establishment of one connection.
	DialTimeout time.Duration
	// RequestTimeout bounds one attempt of a unary call.
	RequestTimeout time.Duration
	// MaxAttempts bounds the attempts of one logical call, retries included.
	MaxAttempts int
	// Backoff is the first pause between attempts; it doubles up to ten times this value.
	Backoff time.Duration
	// Logger receives one debug line per retried attempt; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default set and no endpoints or TLS.
func DefaultConfig() Config {
	return Config{
		DialTimeout:    DefaultDialTimeout,
		RequestTimeout: DefaultRequestTimeout,
		MaxAttempts:    DefaultMaxAttempts,
		Backoff:        DefaultBackoff,
	}
}

// withDefaults fills the zero fields of cfg.
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = d.DialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = d.RequestTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = d.MaxAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = d.Backoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Validate reports what is missing from cfg.
func (cfg Config) Validate() error {
	if len(cfg.Endpoints) == 0 {
		return errors.New("client config: no endpoints: give the gRPC address of at least one node")
	}
	for i, ep := range cfg.Endpoints {
		if ep == "" {
			return fmt.Errorf("client config: endpoint %d is empty", i)
		}
	}
	if cfg.TLS == nil {
		return errors.New("client config: TLS is required: Urne nodes only accept mutual TLS")
	}
	return nil
}
