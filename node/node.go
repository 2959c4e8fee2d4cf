// Package node owns one Urne server: configuration, the raft instance and its encrypted
// stores, membership, the gRPC services, metrics, and the rules that tie them together.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/transport/raftlayer"
)

// Version is the build's version, set at link time.
var Version = "dev"

// Errors a node returns to callers. The gRPC layer maps each to a status reason.
var (
	// ErrNoLeader means no leader is known right now; the request did not take effect.
	ErrNoLeader = errors.New("no leader known")
	// ErrOutcomeUnknown means raft could not say whether the write committed; retry with the same request id.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrShutdown means the node is stopping.
	ErrShutdown = errors.New("node is shutting down")
	// ErrNotFound means the node, server or object named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoData means a stopped node's data directory holds no node data to inspect or recover.
	ErrNoData = errors.New("no node data")
	// ErrInvalidRequest means an operator request is malformed or not allowed as asked.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrChaosDisabled means a chaos request reached a node whose configuration does not enable it.
	ErrChaosDisabled = errors.New("chaos is not enabled on this node")
	// ErrInvalidChaos means a chaos request names an unknown fault or lacks a field.
	ErrInvalidChaos = errors.New("invalid chaos request")
)

// Options are the parts of a node that tests and embedders may replace.
type Options struct {
	Logger *slog.Logger
	// Registry receives the node's metrics; a fresh one is made when nil.
	Registry *prometheus.Registry
	// Dialer dials raft and gRPC peers (fault injection in tests); nil uses net.Dialer.
	Dialer raftlayer.Dialer
	// WrapListener wraps the raft listener (fault injection in tests).
	WrapListener func(net.Listener) net.Listener
	// Clock is the time this node stamps on commands when it leads; nil is the wall clock.
	// Tests move it to pass voting windows and code validities.
	Clock func() time.Time
	// Envelopes opens the envelopes of the legal cast path, with the cluster's envelope key;
	// Receipts signs receipts. Without both, CastSealed is refused as not configured.
	Envelopes EnvelopeOpener
	Receipts  ReceiptSigner
	// Delivery replaces the providers the configuration names (embedders, tests).
	Delivery *Delivery
	// Kill ends the process for a chaos kill; nil sends SIGKILL to this process.
	Kill func()
}

// Node is one running Urne server.
type Node struct {
	cfg  Config
	log  *slog.Logger
	reg  *prometheus.Registry
	opts Options

	keys   *keyring.Keyring
	fsm    *fsm.FSM
	stores *raftStores

	serverTLS *tls.Config
	clientTLS *tls.Config
	gossipKey []byte

	raft      *raft.Raft
	raftLayer *raftlayer.Layer
	transport *raft.NetworkTransport
	gossip    *memberlist.Memberlist
	members   *memberView
	pilot     *autopilot.Autopilot
	peers     *peerConns
	grpc      *grpc.Server
	http      *http.Server
	metrics   *metrics
	leader    *leaderState
	secrets   *secrets
	delivery  *Delivery
	auditor   *auditor
	holds     suffrageHolds
	clock     *stampClock
	casts     castBatcher // the leader's group commit of casts
	chaos     *chaosState // nil unless cfg.Chaos
	// leaderNotify receives raft's leadership changes (raft.Config.NotifyCh).
	leaderNotify chan bool
	// hangupTerm is the last term in which the leader's hang-up proved its death, or is being
	// probed (hangup.go).
	hangupTerm atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New checks the configuration, unlocks the keyring and opens the stores. It refuses, saying
// why, when a key is missing or wrong or a file is corrupt, and then has changed nothing.
func New(cfg Config, opts Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	n := &Node{cfg: cfg, opts: opts, reg: opts.Registry, clock: newStampClock(cfg.NodeID, opts.Clock),
		log: opts.Logger.With("node", cfg.NodeID, "election", cfg.ElectionID)}
	if err := n.loadIdentity(); err != nil {
		return nil, err
	}
	if err := n.loadEdgeKeys(); err != nil {
		return nil, err
	}
	if err := n.prepareElectionServices(); err != nil {
		return nil, err
	}
	if cfg.Chaos {
		n.chaos = newChaosState(cfg, &n.opts)
		n.log.Warn("chaos is enabled: operators may cut, delay and kill this node")
	}
	if err := n.openData(); err != nil {
		return nil, err
	}
	return n, nil
}

// prepareElectionServices derives the secret pepper and builds the delivery providers.
func (n *Node) prepareElectionServices() error {
	var err error
	if n.secrets, err = newSecrets(n.gossipKey, n.cfg.SecretHashCost); err != nil {
		return err
	}
	n.delivery = n.opts.Delivery
	if n.delivery == nil {
		n.delivery, err = newDelivery(n.cfg.Delivery)
	}
	return err
}

// loadIdentity reads the TLS material and the gossip key.
func (n *Node) loadIdentity() error {
	caPEM, certPEM, keyPEM, err := pki.LoadFiles(n.cfg.TLS.CA, n.cfg.TLS.Cert, n.cfg.TLS.Key)
	if err != nil {
		return err
	}
	if n.serverTLS, err = pki.ServerConfig(caPEM, certPEM, keyPEM, n.cfg.ElectionID); err != nil {
		return fmt.Errorf("server TLS: %w", err)
	}
	if n.clientTLS, err = pki.ClientConfig(caPEM, certPEM, keyPEM, n.cfg.ElectionID, ""); err != nil {
		return fmt.Errorf("client TLS: %w", err)
	}
	if err := checkOwnIdentity(certPEM, n.cfg); err != nil {
		return err
	}
	n.gossipKey, err = pki.ReadGossipKey(n.cfg.GossipKeyFile)
	return err
}

// checkOwnIdentity refuses a certificate issued to another node: raft ids and certificates
// must name the same server.
func checkOwnIdentity(certPEM []byte, cfg Config) error {
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		return err
	}
	id, err := pki.IdentityOf(cert)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", cfg.TLS.Cert, err)
	}
	if id.Kind != pki.KindNode || id.Name != cfg.NodeID {
		return fmt.Errorf("certificate %s is for %s, but this node is %q", cfg.TLS.Cert, id, cfg.NodeID)
	}
	return nil
}

// openData unlocks the keyring and opens the raft stores and the state machine.
func (n *Node) openData() error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	kek, err := keyring.LoadKEK(keyring.KEKSource(n.cfg.KEK))
	if err != nil {
		return fmt.Errorf("key-encryption key: %w", err)
	}
	if n.keys, err = openKeyring(n.cfg.DataDir, kek); err != nil {
		return err
	}
	n.fsm, n.stores, err = openStores(n.cfg.DataDir, n.cfg.NodeID, n.keys, n.log, true)
	return err
}

// openKeyring opens the node's keyring, creating it only in a data directory that holds no data yet.
func openKeyring(dir string, kek *keyring.KEK) (*keyring.Keyring, error) {
	path := filepath.Join(dir, "keyring")
	kr, err := keyring.Open(path, kek)
	if errors.Is(err, keyring.ErrNoKeyring) {
		for _, f := range []string{"raft.db", "fsm.db"} {
			if _, statErr := os.Stat(filepath.Join(dir, f)); statErr == nil {
				return nil, fmt.Errorf("data dir %s holds %s but no keyring: refusing to start with a new key over old data", dir, f)
			}
		}
		return keyring.Create(path, kek)
	}
	return kr, err
}

// Start opens the listeners and starts raft, gossip, the gRPC services and metrics.
func (n *Node) Start() error {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.metrics = newMetrics(n.reg, n)
	var err error
	if n.auditor, err = newAuditor(n); err != nil {
		n.Shutdown()
		return err
	}
	n.fsm.SetObserver(n.observeApplied)
	n.peers = newPeerConns(n.clientTLS, n.opts.Dialer)
	n.leader = &leaderState{}
	steps := []func() error{n.startRaft, n.startGRPC, n.startGossip, n.startMetrics}
	for _, step := range steps {
		if err := step(); err != nil {
			n.Shutdown()
			return err
		}
	}
	n.startAutopilot()
	n.wg.Add(5)
	go n.leaderLoop()
	go n.deadlineLoop()
	go n.outboxLoop()
	go n.erasureLoop()
	go n.closeCompactLoop()
	n.auditor.start(n)
	n.log.Info("node started", "version", Version, "role", n.cfg.Role, "datacenter", n.cfg.Datacenter,
		"raft", n.cfg.Bind.Raft, "grpc", n.cfg.Bind.GRPC, "gossip", n.cfg.Bind.Gossip)
	return nil
}

// Shutdown stops every part of the node, leadership first, and closes the stores.
func (n *Node) Shutdown() error {
	n.closeOnce.Do(func() { n.closeErr = n.shutdown() })
	return n.closeErr
}

func (n *Node) shutdown() error {
	var errs []error
	if n.cancel != nil {
		n.cancel()
	}
	if n.pilot != nil {
		<-n.pilot.Stop()
	}
	if n.gossip != nil {
		_ = n.gossip.Leave(time.Second)
		errs = append(errs, n.gossip.Shutdown())
	}
	if n.grpc != nil {
		stopGRPC(n.grpc, 3*time.Second)
	}
	if n.http != nil {
		errs = append(errs, n.http.Close())
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	n.wg.Wait()
	if n.peers != nil {
		n.peers.Close()
	}
	errs = append(errs, n.fsm.Close(), n.stores.Close())
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// stopGRPC drains in-flight calls for up to d, then cuts the rest.
func stopGRPC(s *grpc.Server, d time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		s.Stop()
	}
}

// Run starts a node and keeps it running until ctx is done.
// It sets the process's soft memory limit from cfg (a test running several nodes in one
// process calls New and Start instead).
func Run(ctx context.Context, cfg Config, opts Options) error {
	if limit, ok := cfg.memoryLimit(os.Getenv); ok {
		debug.SetMemoryLimit(limit)
	}
	n, err := New(cfg, opts)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return n.Shutdown()
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Raft returns the raft instance, for tests and drills.
func (n *Node) Raft() *raft.Raft { return n.raft }

// FSM returns the state machine, for tests and drills.
func (n *Node) FSM() *fsm.FSM { return n.fsm }
