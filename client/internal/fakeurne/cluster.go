package fakeurne

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/urne-vote/urne/transport/urnepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Cluster is a set of fake nodes sharing one election state. Followers take writes as if
// they forwarded them to the leader.
type Cluster struct {
	CA         *CA
	ElectionID string
	Nodes      []*Node

	mu           sync.Mutex
	leader       string // node id; "" while there is no leader
	state        *State
	calls        []Call
	importChunks []int
	keyRotations int
}

// Call is one request a fake node received.
type Call struct {
	Node      string
	Method    string
	RequestID string
	VoterID   string
}

// Fault makes the next Times calls of Method on a node fail with Err.
type Fault struct {
	Method string
	Times  int
	Err    error
	// AfterApply applies the write before returning Err, as when a node loses the answer to
	// a committed command: the outcome is unknown to the client.
	AfterApply bool
	// Then runs once, when the fault fires the first time (e.g. to move leadership).
	Then func()
}

// Start runs n nodes (n1, n2, ...) on loopback with TLS certificates of ca; n1 leads. The
// nodes stop when t ends.
func Start(t testing.TB, ca *CA, n int) *Cluster {
	t.Helper()
	c := &Cluster{CA: ca, ElectionID: ca.ElectionID, state: newState(), leader: "n1"}
	for i := 1; i <= n; i++ {
		node, err := c.startNode(fmt.Sprintf("n%d", i), ca)
		if err != nil {
			t.Fatalf("starting fake node: %v", err)
		}
		c.Nodes = append(c.Nodes, node)
		t.Cleanup(node.Stop)
	}
	return c
}

// StartNodeWithCA runs one more node whose certificate is issued by ca, which may belong to
// another election.
func (c *Cluster) StartNodeWithCA(t testing.TB, id string, ca *CA) *Node {
	t.Helper()
	node, err := c.startNode(id, ca)
	if err != nil {
		t.Fatalf("starting fake node: %v", err)
	}
	t.Cleanup(node.Stop)
	return node
}

func (c *Cluster) startNode(id string, ca *CA) (*Node, error) {
	cert, err := ca.NodeCert(id)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.CA.Pool(),
	})
	n := &Node{ID: id, Addr: lis.Addr().String(), cluster: c, server: grpc.NewServer(grpc.Creds(creds))}
	urnepb.RegisterElectionServer(n.server, n)
	urnepb.RegisterOperatorServer(n.server, n)
	go func() { _ = n.server.Serve(lis) }()
	return n, nil
}

// Endpoints returns the addresses of the nodes.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.Addr)
	}
	return eps
}

// Node returns the node with id.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// SetLeader makes the node with id the leader; "" leaves the cluster without one.
func (c *Cluster) SetLeader(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = id
}

// Seed creates the election, imports voters prefix000001.. and opens it.
func (c *Cluster) Seed(voters int, prefix string) {
	c.Mutate(func(s *State) {
		s.ElectionID, s.Name, s.Phase = c.ElectionID, "fake", urnepb.ElectionPhase_PHASE_OPEN
		for i := 1; i <= voters; i++ {
			id := fmt.Sprintf("%s%06d", prefix, i)
			s.Voters[id] = &urnepb.Voter{VoterId: id}
		}
		s.Index++
	})
}

// Mutate changes the shared state under the cluster lock.
func (c *Cluster) Mutate(fn func(s *State)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.state)
}

// Calls returns the calls received, in order, filtered by method ("" for all).
func (c *Cluster) Calls(method string) []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Call
	for _, call := range c.calls {
		if method == "" || call.Method == method {
			out = append(out, call)
		}
	}
	return out
}

// ImportChunks returns the number of voters in every ImportVoters message received.
func (c *Cluster) ImportChunks() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.importChunks...)
}

// Node is one fake node.
type Node struct {
	urnepb.UnimplementedElectionServer
	urnepb.UnimplementedOperatorServer

	ID      string
	Addr    string
	cluster *Cluster
	server  *grpc.Server

	// Guarded by cluster.mu.
	faults   []*Fault
	own      *State // a diverged replica; nil reads the shared state
	digest   []byte // replaces the computed digest when set
	lag      uint64 // the applied index reported is this much behind
	stopOnce sync.Once
}

// Stop stops the node's server: its address refuses connections.
func (n *Node) Stop() { n.stopOnce.Do(n.server.Stop) }

// Inject adds a fault.
func (n *Node) Inject(f Fault) {
	n.cluster.mu.Lock()
	defer n.cluster.mu.Unlock()
	n.faults = append(n.faults, &f)
}

// Diverge gives the node its own copy of the state, changed by fn: its reads no longer see
// the shared state.
func (n *Node) Diverge(fn func(s *State)) {
	n.cluster.mu.Lock()
	defer n.cluster.mu.Unlock()
	if n.own == nil {
		n.own = n.cluster.state.clone()
	}
	fn(n.own)
}

// SetDigest makes StateDigest report digest instead of the state's.
func (n *Node) SetDigest(digest []byte) {
	n.cluster.mu.Lock()
	defer n.cluster.mu.Unlock()
	n.digest = digest
}

// SetLag makes the node report an applied index lag entries behind.
func (n *Node) SetLag(lag uint64) {
	n.cluster.mu.Lock()
	defer n.cluster.mu.Unlock()
	n.lag = lag
}

// enter records a call and returns the fault it triggers, if any. Caller holds cluster.mu.
func (n *Node) enter(call Call) *Fault {
	call.Node = n.ID
	n.cluster.calls = append(n.cluster.calls, call)
	for i, f := range n.faults {
		if f.Method != call.Method {
			continue
		}
		fired := *f
		f.Times--
		f.Then = nil
		if f.Times <= 0 {
			n.faults = append(n.faults[:i], n.faults[i+1:]...)
		}
		return &fired
	}
	return nil
}

// view is the state the node reads. Caller holds cluster.mu.
func (n *Node) view() *State {
	if n.own != nil {
		return n.own
	}
	return n.cluster.state
}
