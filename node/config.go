package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Role is what a server does in the cluster.
type Role string

const (
	// RoleVoter is a full raft voter in a datacenter.
	RoleVoter Role = "voter"
	// RoleNonvoter keeps an extra copy (a storage point) and never votes.
	RoleNonvoter Role = "nonvoter"
	// RoleWitness is a voter at a third site that hands leadership back to a datacenter node.
	RoleWitness Role = "witness"
)

// Voting reports whether the role holds a vote once promoted.
func (r Role) Voting() bool { return r == RoleVoter || r == RoleWitness }

// Profile names a set of raft timeouts.
type Profile string

const (
	// ProfileLAN is for nodes a few milliseconds apart: fast failover.
	ProfileLAN Profile = "lan"
	// ProfileWAN scales every timeout for inter-datacenter round trips.
	ProfileWAN Profile = "wan"
)

// Addresses are the four endpoints of a node.
type Addresses struct {
	Raft    string `json:"raft"`
	GRPC    string `json:"grpc"`
	Gossip  string `json:"gossip"`
	Metrics string `json:"metrics"`
}

// Peer is one server of the initial configuration written by `urne cluster init`.
type Peer struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	Role       Role   `json:"role"`
	Raft       string `json:"raft"`
	GRPC       string `json:"grpc"`
	Gossip     string `json:"gossip"`
}

// TLSFiles are the PEM files of a node's identity.
type TLSFiles struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// KEKSource says where the key-encryption key comes from. Exactly one field is set.
type KEKSource struct {
	// File holds the key as written by `urne cluster init`; it must have mode 0600.
	File string `json:"file,omitempty"`
	// Env names an environment variable holding the same text as File would.
	Env string `json:"env,omitempty"`
	// Command is run through /bin/sh; its standard output is the same text as File would hold.
	Command string `json:"command,omitempty"`
}

// Config is everything one node needs. Paths relative to the config file are resolved by LoadConfig.
type Config struct {
	ElectionID string `json:"election_id"`
	NodeID     string `json:"node_id"`
	Datacenter string `json:"datacenter"`
	Role       Role   `json:"role"`
	DataDir    string `json:"data_dir"`

	Bind Addresses `json:"bind"`
	// Advertise overrides Bind where other nodes must use another address (NAT, containers).
	Advertise Addresses `json:"advertise,omitempty"`

	// Bootstrap is the initial voter set; every listed node bootstraps with the same set.
	// A node not listed joins through Join as a nonvoter and is promoted by autopilot.
	Bootstrap []Peer `json:"bootstrap,omitempty"`
	// Join lists gossip addresses of any existing nodes.
	Join []string `json:"join,omitempty"`

	TLS           TLSFiles  `json:"tls"`
	GossipKeyFile string    `json:"gossip_key_file"`
	KEK           KEKSource `json:"kek"`

	Profile  Profile `json:"profile"`
	LogLevel string  `json:"log_level"`
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64 `json:"snapshot_threshold"`
	// TrailingLogs is the number of log entries kept after a snapshot, so that a follower a
	// little behind catches up from the log rather than from a snapshot; zero means 10240.
	TrailingLogs uint64 `json:"trailing_logs,omitempty"`
	// SnapshotInterval is how often raft checks whether SnapshotThreshold entries accumulated,
	// as a Go duration ("30s", the default when empty).
	SnapshotInterval string `json:"snapshot_interval,omitempty"`
	// CleanupDeadServers lets autopilot remove voters that gossip has declared dead, as long
	// as a quorum of the bootstrap size remains. Off by default: an operator removes servers.
	CleanupDeadServers bool `json:"cleanup_dead_servers"`
	// Pprof serves Go's profiler under /debug/pprof/ on the metrics address. Off by default:
	// the metrics address has no authentication.
	Pprof bool `json:"pprof,omitempty"`
	// MemoryLimitMiB is the Go runtime's soft memory limit (runtime/debug.SetMemoryLimit) in
	// MiB: past it the collector runs more often rather than letting the heap double. Zero
	// means 768 MiB unless the GOMEMLIMIT environment variable sets one; -1 means no limit.
	// It bounds the Go heap, not the pages of the state database the kernel maps in.
	MemoryLimitMiB int64 `json:"memory_limit_mib,omitempty"`

	// EnvelopeKeyFile (RSA, PKCS#1 or PKCS#8 PEM) opens the envelopes of sealed casts and
	// ReceiptKeyFile (Ed25519, PKCS#8 PEM) signs receipts; both are the same on every node.
	EnvelopeKeyFile string `json:"envelope_key_file,omitempty"`
	ReceiptKeyFile  string `json:"receipt_key_file,omitempty"`

	// Delivery lists the email and SMS providers of the outbox, primary first.
	Delivery DeliveryConfig `json:"delivery,omitempty"`
	// SecretHashCost is the bcrypt cost of the voters' non-trivial secrets (4 to 31).
	SecretHashCost int `json:"secret_hash_cost,omitempty"`

	// Activity register, trusted timestamps, integrity check and alerts.
	AuditConfig

	// Chaos lets operators inject faults into this node (`urne chaos`): partitions, delays
	// and drops on its connections to peers, failpoints, and a kill. Never on in production.
	Chaos bool `json:"chaos,omitempty"`
}

// defaultTrailingLogs is Config.TrailingLogs when unset.
const defaultTrailingLogs = 10240

// DefaultConfig returns a configuration with every optional field set to its default.
func DefaultConfig() Config {
	return Config{
		Role:              RoleVoter,
		Profile:           ProfileLAN,
		LogLevel:          "info",
		SnapshotThreshold: 8192,
		SecretHashCost:    defaultSecretHashCost,
		AuditConfig:       defaultAuditConfig(),
		TrailingLogs:      defaultTrailingLogs,
	}
}

// LoadConfig reads a JSON config file over DefaultConfig, resolves relative paths against the
// file's folder, and validates the result.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	base := filepath.Dir(path)
	cfg.AuditConfig.resolvePaths(base)
	for _, p := range append([]*string{&cfg.DataDir, &cfg.TLS.CA, &cfg.TLS.Cert, &cfg.TLS.Key, &cfg.GossipKeyFile, &cfg.KEK.File, &cfg.EnvelopeKeyFile, &cfg.ReceiptKeyFile},
		cfg.Delivery.secretPaths()...) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	return cfg, cfg.Validate()
}

// Validate reports the first problem of the configuration.
func (c *Config) Validate() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need(c.ElectionID, "election_id")
	need(c.NodeID, "node_id")
	need(c.Datacenter, "datacenter")
	need(c.DataDir, "data_dir")
	need(c.Bind.Raft, "bind.raft")
	need(c.Bind.GRPC, "bind.grpc")
	need(c.Bind.Gossip, "bind.gossip")
	need(c.TLS.CA, "tls.ca")
	need(c.TLS.Cert, "tls.cert")
	need(c.TLS.Key, "tls.key")
	need(c.GossipKeyFile, "gossip_key_file")
	switch c.Role {
	case RoleVoter, RoleNonvoter, RoleWitness:
	default:
		errs = append(errs, fmt.Errorf("role %q: want voter, nonvoter or witness", c.Role))
	}
	switch c.Profile {
	case ProfileLAN, ProfileWAN:
	default:
		errs = append(errs, fmt.Errorf("profile %q: want lan or wan", c.Profile))
	}
	set := 0
	for _, s := range []string{c.KEK.File, c.KEK.Env, c.KEK.Command} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, errors.New("kek: set exactly one of file, env, command"))
	}
	if c.KEK.File != "" && c.DataDir != "" && within(c.KEK.File, c.DataDir) {
		errs = append(errs, fmt.Errorf("kek.file %s lies inside data_dir: the key-encryption key must live outside the data it protects", c.KEK.File))
	}
	ids := map[string]bool{}
	for _, p := range c.Bootstrap {
		if p.ID == "" || p.Raft == "" {
			errs = append(errs, errors.New("bootstrap: every peer needs id and raft"))
		}
		if ids[p.ID] {
			errs = append(errs, fmt.Errorf("bootstrap: node %s listed twice", p.ID))
		}
		ids[p.ID] = true
	}
	if c.SnapshotThreshold == 0 {
		errs = append(errs, errors.New("snapshot_threshold must be positive"))
	}
	if c.MemoryLimitMiB < -1 || (c.MemoryLimitMiB > 0 && c.MemoryLimitMiB < minMemoryLimitMiB) {
		errs = append(errs, fmt.Errorf("memory_limit_mib %d: want -1 (none), 0 (default) or at least %d", c.MemoryLimitMiB, minMemoryLimitMiB))
	}
	if c.SecretHashCost != 0 && (c.SecretHashCost < minSecretHashCost || c.SecretHashCost > maxSecretHashCost) {
		errs = append(errs, fmt.Errorf("secret_hash_cost %d: want %d to %d", c.SecretHashCost, minSecretHashCost, maxSecretHashCost))
	}
	if err := c.Delivery.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.AuditConfig.validate()...)
	if _, err := c.snapshotInterval(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Soft memory limit of the Go runtime: the default, and the least a node runs in.
const (
	defaultMemoryLimitMiB = 768
	minMemoryLimitMiB     = 64
)

// memoryLimit is the soft limit in bytes to set, or ok=false to leave the runtime's: no
// limit asked for, or none in the file while GOMEMLIMIT sets one.
func (c *Config) memoryLimit(getenv func(string) string) (limit int64, ok bool) {
	switch {
	case c.MemoryLimitMiB == -1:
		return math.MaxInt64, true
	case c.MemoryLimitMiB > 0:
		return c.MemoryLimitMiB << 20, true
	case getenv("GOMEMLIMIT") != "":
		return 0, false
	}
	return defaultMemoryLimitMiB << 20, true
}

// defaultSnapshotInterval is Config.SnapshotInterval when unset.
const defaultSnapshotInterval = 30 * time.Second

// snapshotInterval parses SnapshotInterval.
func (c *Config) snapshotInterval() (time.Duration, error) {
	if c.SnapshotInterval == "" {
		return defaultSnapshotInterval, nil
	}
	d, err := time.ParseDuration(c.SnapshotInterval)
	if err != nil || d < 100*time.Millisecond {
		return 0, fmt.Errorf("snapshot_interval %q: want a duration of at least 100ms, e.g. \"30s\"", c.SnapshotInterval)
	}
	return d, nil
}

// advertised returns the address others use for an endpoint.
func advertised(bind, adv string) string {
	if adv != "" {
		return adv
	}
	return bind
}

func within(path, dir string) bool {
	a, err1 := filepath.Abs(path)
	b, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// raftTimeouts returns heartbeat, election, lease and commit timeouts of a profile.
func (p Profile) raftTimeouts() (heartbeat, election, lease, commit time.Duration) {
	heartbeat, election, lease, commit = 500*time.Millisecond, 500*time.Millisecond, 400*time.Millisecond, 20*time.Millisecond
	if p == ProfileWAN {
		return 3 * heartbeat, 3 * election, 3 * lease, commit
	}
	return
}
