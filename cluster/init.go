// Package cluster owns an election's cluster folder: generating it (CA, certificates, keys,
// node configs, cluster.json) and finding its parts again.
package cluster

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urne-vote/urne/backup"
	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/pki"
)

// File names inside a cluster folder (see client.ClusterFileName and client.CAFile).
const (
	caKeyFile      = "ca/ca.key"
	nodesDir       = "nodes"
	nodeConfigFile = "node.json"
	nodeCAFile     = "ca.crt"
	nodeCertFile   = "node.crt"
	nodeKeyFile    = "node.key"
	gossipKeyFile  = "gossip.key"
	envelopeKey    = "envelope.key"
	receiptKey     = "receipt.key"
	kekFile        = "kek"
	// EnvelopePublicKeyFile and ReceiptPublicKeyFile, inside the cluster folder, are what
	// voters' devices seal envelopes to and check receipts with.
	EnvelopePublicKeyFile = "keys/envelope.pub.pem"
	ReceiptPublicKeyFile  = "keys/receipt.pub.pem"
	nodeDataDir           = "data"
	// BackupKeyFile is the backup key of the cluster's archives, relative to the folder. It
	// belongs with the operators who restore, never next to the archives it opens.
	BackupKeyFile = "backup/backup.key"
)

// clientRoles are the client certificates every cluster folder holds.
var clientRoles = []string{pki.RoleOperator, pki.RoleOrganizer, pki.RoleApp}

// errDirNotEmpty is returned when cluster init would overwrite an existing folder.
var errDirNotEmpty = errors.New("folder exists and is not empty")

// Options are the inputs of `urne cluster init`.
type Options struct {
	ElectionID string
	Topology   string
	Out        string
	// Host is the bind address of every node; 0.0.0.0 needs an advertised host per node.
	Host string
	// BasePort 0 picks free ports on Host.
	BasePort int
	// Advertise maps node ids to the host other nodes and clients reach them at.
	Advertise map[string]string
	Profile   node.Profile
	// Chaos enables `urne chaos` on every node (experiments only, never in production).
	Chaos bool
}

// plannedNode is one node of the cluster being written, with its addresses.
type plannedNode struct {
	topologyNode
	bind, adv node.Addresses
	advHost   string
}

// Init writes a complete cluster folder at o.Out: it is assembled in a temporary
// folder beside it and renamed into place, so a failure leaves nothing half written.
func Init(o Options) (*client.ClusterFile, error) {
	nodes, err := planCluster(o)
	if err != nil {
		return nil, err
	}
	if err := checkEmptyDir(o.Out); err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(o.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("cluster folder: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".urne-init-*")
	if err != nil {
		return nil, fmt.Errorf("cluster folder: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing left once renamed
	file, err := writeCluster(tmp, o, nodes)
	if err != nil {
		return nil, err
	}
	// os.Rename does not replace a folder, even an empty one: remove the empty one first.
	if err := os.Remove(o.Out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster folder %s: %w", o.Out, err)
	}
	if err := os.Rename(tmp, o.Out); err != nil {
		return nil, fmt.Errorf("cluster folder %s: %w", o.Out, err)
	}
	return file, nil
}

// checkEmptyDir refuses a folder that holds anything: a cluster folder holds keys that
// must never be replaced by accident.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster folder %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("cluster folder %s: %w; refusing to overwrite keys and certificates (choose another --out)", dir, errDirNotEmpty)
	}
	return nil
}

// planCluster checks the options and gives every node its addresses.
func planCluster(o Options) ([]plannedNode, error) {
	if err := pki.ValidateName(o.ElectionID); err != nil {
		return nil, fmt.Errorf("election id: %w", err)
	}
	if o.Profile != node.ProfileLAN && o.Profile != node.ProfileWAN {
		return nil, fmt.Errorf("profile %q: want lan or wan", o.Profile)
	}
	topo, err := parseTopology(o.Topology)
	if err != nil {
		return nil, err
	}
	if err := checkAdvertise(o, topo); err != nil {
		return nil, err
	}
	ports, err := nodePorts(o.Host, o.BasePort, len(topo))
	if err != nil {
		return nil, err
	}
	planned := make([]plannedNode, len(topo))
	for i, t := range topo {
		planned[i] = planNode(t, o.Host, o.Advertise[t.ID], ports[i])
	}
	return planned, nil
}

func checkAdvertise(o Options, topo []topologyNode) error {
	known := map[string]bool{}
	var missing []string
	for _, t := range topo {
		known[t.ID] = true
		if o.Advertise[t.ID] == "" {
			missing = append(missing, t.ID)
		}
	}
	for id := range o.Advertise {
		if !known[id] {
			return fmt.Errorf("--advertise-hosts names node %q, which topology %s does not have", id, o.Topology)
		}
	}
	if unspecifiedHost(o.Host) && len(missing) > 0 {
		return fmt.Errorf("--host %s is not an address others can reach: give --advertise-hosts for %s", o.Host, strings.Join(missing, ", "))
	}
	return nil
}

func unspecifiedHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "" || ip != nil && ip.IsUnspecified()
}

func planNode(t topologyNode, host, advHost string, p [4]int) plannedNode {
	addr := func(h string, port int) string { return net.JoinHostPort(h, strconv.Itoa(port)) }
	pn := plannedNode{topologyNode: t, advHost: advHost}
	pn.bind = node.Addresses{Raft: addr(host, p[0]), GRPC: addr(host, p[1]), Gossip: addr(host, p[2]), Metrics: addr(host, p[3])}
	if advHost != "" {
		pn.adv = node.Addresses{Raft: addr(advHost, p[0]), GRPC: addr(advHost, p[1]), Gossip: addr(advHost, p[2]), Metrics: addr(advHost, p[3])}
	}
	return pn
}

// reach returns the addresses others use for the node.
func (p plannedNode) reach() node.Addresses {
	if p.advHost != "" {
		return p.adv
	}
	return p.bind
}

// certHosts are the names in the node certificate: every name the node may be dialled at.
func (p plannedNode) certHosts(host string) []string {
	hosts := []string{"127.0.0.1", "localhost", p.ID}
	for _, h := range []string{host, p.advHost} {
		if h != "" && !unspecifiedHost(h) && !contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// writeCluster writes every file of the folder into dir.
func writeCluster(dir string, o Options, nodes []plannedNode) (*client.ClusterFile, error) {
	ca, err := pki.NewCA(o.ElectionID, pki.DefaultCAValidity)
	if err != nil {
		return nil, err
	}
	if err := writeCA(dir, ca); err != nil {
		return nil, err
	}
	if err := writeClients(dir, ca); err != nil {
		return nil, err
	}
	keys, err := newClusterSecrets(dir)
	if err != nil {
		return nil, err
	}
	file := &client.ClusterFile{ElectionID: o.ElectionID, Topology: o.Topology}
	for _, n := range nodes {
		if err := writeNode(dir, o, ca, keys, n, nodes); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		r := n.reach()
		file.Nodes = append(file.Nodes, client.ClusterNode{
			ID: n.ID, Datacenter: n.Datacenter, Role: string(n.Role),
			Raft: r.Raft, GRPC: r.GRPC, Gossip: r.Gossip, Metrics: r.Metrics,
			Config: filepath.ToSlash(filepath.Join(nodesDir, n.ID, nodeConfigFile)),
		})
	}
	if err := writeBackupKey(dir, o.ElectionID); err != nil {
		return nil, err
	}
	if err := client.WriteClusterFile(filepath.Join(dir, client.ClusterFileName), file); err != nil {
		return nil, err
	}
	return file, nil
}

// writeBackupKey writes a new random key for the archives of `urne backup save`.
func writeBackupKey(dir, electionID string) error {
	key, err := backup.GenerateKey(electionID[:min(len(electionID), 48)] + "-backup-1")
	if err != nil {
		return err
	}
	return backup.WriteKeyFile(filepath.Join(dir, filepath.FromSlash(BackupKeyFile)), key)
}

// BackupKeyPath returns the path of the backup key inside a cluster folder.
func BackupKeyPath(dir string) string { return filepath.Join(dir, filepath.FromSlash(BackupKeyFile)) }

func writeCA(dir string, ca *pki.CA) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "ca"), 0o700); err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(dir, client.CAFile), ca.CertPEM(), 0o644); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dir, caKeyFile), keyPEM, 0o600)
}

func writeClients(dir string, ca *pki.CA) error {
	clients := filepath.Join(dir, client.ClientsDir)
	if err := os.MkdirAll(clients, 0o700); err != nil {
		return err
	}
	for _, role := range clientRoles {
		certPEM, keyPEM, err := ca.IssueClient(role)
		if err != nil {
			return err
		}
		if err := pki.WriteFile(filepath.Join(clients, role+".crt"), certPEM, 0o644); err != nil {
			return err
		}
		if err := pki.WriteFile(filepath.Join(clients, role+".key"), keyPEM, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeNode writes a node's folder: its certificate and key, the CA certificate, the gossip
// key, its own key-encryption key and node.json. The folder is self-contained so it can be
// copied to the machine that runs the node.
// clusterSecrets are the keys every node of the cluster shares.
type clusterSecrets struct {
	gossip, envelopePEM, receiptPEM []byte
}

// newClusterSecrets draws the gossip key, the envelope key and the receipt signing key, and
// publishes the two public keys in the cluster folder.
func newClusterSecrets(dir string) (*clusterSecrets, error) {
	gossip, err := pki.GenerateGossipKey()
	if err != nil {
		return nil, err
	}
	env, err := ballot.GenerateEnvelopeKey()
	if err != nil {
		return nil, err
	}
	envPEM, err := ballot.MarshalEnvelopePrivateKeyPEM(env)
	if err != nil {
		return nil, err
	}
	envPub, err := ballot.MarshalEnvelopePublicKeyPEM(&env.PublicKey)
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	recPEM, err := node.MarshalReceiptKey(priv)
	if err != nil {
		return nil, err
	}
	recPub, err := ballot.MarshalSigningPublicKeyPEM(pub)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		return nil, err
	}
	if err := pki.WriteFile(filepath.Join(dir, EnvelopePublicKeyFile), envPub, 0o644); err != nil {
		return nil, err
	}
	if err := pki.WriteFile(filepath.Join(dir, ReceiptPublicKeyFile), recPub, 0o644); err != nil {
		return nil, err
	}
	return &clusterSecrets{gossip: gossip, envelopePEM: envPEM, receiptPEM: recPEM}, nil
}

func writeNode(dir string, o Options, ca *pki.CA, keys *clusterSecrets, n plannedNode, all []plannedNode) error {
	nd := filepath.Join(dir, nodesDir, n.ID)
	if err := os.MkdirAll(nd, 0o700); err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.IssueNode(n.ID, n.certHosts(o.Host))
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{nodeCAFile, ca.CertPEM(), 0o644},
		{nodeCertFile, certPEM, 0o644},
		{nodeKeyFile, keyPEM, 0o600},
		{gossipKeyFile, pki.EncodeGossipKey(keys.gossip), 0o600},
		{envelopeKey, keys.envelopePEM, 0o600},
		{receiptKey, keys.receiptPEM, 0o600},
	}
	for _, f := range files {
		if err := pki.WriteFile(filepath.Join(nd, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	kek, err := keyring.GenerateKEK(fmt.Sprintf("kek-%s-1", n.ID))
	if err != nil {
		return err
	}
	if err := keyring.WriteKEKFile(filepath.Join(nd, kekFile), kek); err != nil {
		return err
	}
	return writeNodeConfig(filepath.Join(nd, nodeConfigFile), nodeConfig(o, n, all))
}

// nodeConfig is the node.json of n; paths are relative to the node's folder.
func nodeConfig(o Options, n plannedNode, all []plannedNode) node.Config {
	cfg := node.DefaultConfig()
	cfg.ElectionID = o.ElectionID
	cfg.NodeID = n.ID
	cfg.Datacenter = n.Datacenter
	cfg.Role = n.Role
	cfg.DataDir = nodeDataDir
	cfg.Bind = n.bind
	cfg.Advertise = n.adv
	cfg.TLS = node.TLSFiles{CA: nodeCAFile, Cert: nodeCertFile, Key: nodeKeyFile}
	cfg.GossipKeyFile = gossipKeyFile
	cfg.EnvelopeKeyFile, cfg.ReceiptKeyFile = envelopeKey, receiptKey
	cfg.KEK = node.KEKSource{File: kekFile}
	cfg.Profile = o.Profile
	cfg.Chaos = o.Chaos
	for _, p := range all {
		r := p.reach()
		// Every node of these layouts votes (a witness too), so all of them bootstrap.
		cfg.Bootstrap = append(cfg.Bootstrap, node.Peer{ID: p.ID, Datacenter: p.Datacenter, Role: p.Role, Raft: r.Raft, GRPC: r.GRPC, Gossip: r.Gossip})
		cfg.Join = append(cfg.Join, r.Gossip)
	}
	return cfg
}

func writeNodeConfig(path string, cfg node.Config) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return pki.WriteFile(path, append(data, '\n'), 0o644)
}

// nodePorts returns raft, grpc, gossip and metrics ports for n nodes: base+10*i+{0,1,2,3},
// or free ports of host when base is 0.
func nodePorts(host string, base, n int) ([][4]int, error) {
	if base == 0 {
		return freePorts(host, n)
	}
	if base < 1024 || base+10*(n-1)+3 > 65535 {
		return nil, fmt.Errorf("--base-port %d: the ports %d to %d must lie between 1024 and 65535", base, base, base+10*(n-1)+3)
	}
	out := make([][4]int, n)
	for i := range out {
		for j := range out[i] {
			out[i][j] = base + 10*i + j
		}
	}
	return out, nil
}

// freePorts asks the kernel for 4n free ports on host. The gossip port must also be free for
// UDP. Every listener stays open until all ports are chosen so that none is handed out twice.
func freePorts(host string, n int) ([][4]int, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	out := make([][4]int, n)
	for i := range out {
		for j := range out[i] {
			port, closers, err := freePort(host, j == 2)
			if err != nil {
				return nil, err
			}
			held = append(held, closers...)
			out[i][j] = port
		}
	}
	return out, nil
}

// freePort listens on host:0 and, with udp, binds the same port for UDP, trying a few
// times when the UDP port is taken.
func freePort(host string, udp bool) (int, []io.Closer, error) {
	for range 200 {
		// Below the kernel's usual ephemeral range (32768-60999): a port the kernel hands to
		// an outgoing connection can never take a node's port while the node is restarting.
		port := freePortLow + mrand.IntN(freePortHigh-freePortLow)
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		if !udp {
			return port, []io.Closer{l}, nil
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return port, []io.Closer{l, u}, nil
		}
		_ = l.Close()
	}
	return 0, nil, fmt.Errorf("finding a free TCP and UDP port on %s between %d and %d: gave up after 200 tries", host, freePortLow, freePortHigh)
}

// The range free ports are drawn from.
const freePortLow, freePortHigh = 20000, 32000

// NodeConfigPath returns the path of node id's config inside a cluster folder.
func NodeConfigPath(dir, id string) string {
	return filepath.Join(dir, nodesDir, id, nodeConfigFile)
}
