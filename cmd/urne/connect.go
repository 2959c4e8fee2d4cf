package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Client roles, one certificate each in a cluster folder.
const (
	roleOperator  = "operator"
	roleOrganizer = "organizer"
	roleApp       = "app"
)

// raftLeader is the raft state a leader reports.
const raftLeader = "Leader"

// nodeTimeout bounds one Node or digest question to one node in status displays and polls.
const nodeTimeout = 2 * time.Second

// connFlags are the flags of every command that talks to a cluster: a cluster folder, or
// endpoints with TLS files.
type connFlags struct {
	cluster   string
	endpoints []string
	election  string
	ca        string
	cert      string
	key       string
	role      string
	timeout   time.Duration
}

// addConnFlags registers the connection flags; role is the client certificate used from a
// cluster folder unless --role says otherwise.
func addConnFlags(cmd *cobra.Command, role string) *connFlags {
	f := &connFlags{role: role}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster folder written by `urne cluster init` or `urne dev up`")
	fl.StringSliceVar(&f.endpoints, "endpoints", nil, "gRPC addresses of nodes (host:port,...), instead of --cluster")
	fl.StringVar(&f.election, "election", "", "election id the node certificates must name (with --endpoints)")
	fl.StringVar(&f.ca, "ca", "", "election CA certificate (with --endpoints)")
	fl.StringVar(&f.cert, "cert", "", "client certificate (with --endpoints)")
	fl.StringVar(&f.key, "key", "", "client private key (with --endpoints)")
	fl.StringVar(&f.role, "role", role, "client role whose certificate is taken from the cluster folder")
	fl.DurationVar(&f.timeout, "request-timeout", 0, "timeout of one attempt of a request (default: the client's)")
	return f
}

// clusterTarget is what a command knows about the cluster it talks to.
type clusterTarget struct {
	cfg  client.Config
	file *client.ClusterFile // nil with --endpoints
}

// nodes lists the endpoints with the node ids the cluster file gives them ("" with --endpoints).
func (t *clusterTarget) nodes() []targetNode {
	if t.file == nil {
		out := make([]targetNode, len(t.cfg.Endpoints))
		for i, ep := range t.cfg.Endpoints {
			out[i] = targetNode{Endpoint: ep}
		}
		return out
	}
	out := make([]targetNode, len(t.file.Nodes))
	for i, n := range t.file.Nodes {
		out[i] = targetNode{ID: n.ID, Datacenter: n.Datacenter, Role: n.Role, Endpoint: n.GRPC}
	}
	return out
}

// endpointOf resolves a node id of the cluster file, or takes the argument as an address.
func (t *clusterTarget) endpointOf(idOrAddr string) (string, error) {
	if t.file != nil {
		if n, ok := t.file.Node(idOrAddr); ok {
			return n.GRPC, nil
		}
	}
	if strings.Contains(idOrAddr, ":") {
		return idOrAddr, nil
	}
	return "", fmt.Errorf("node %q is not in the cluster file; give a node id or a host:port address", idOrAddr)
}

type targetNode struct {
	ID         string `json:"id,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
	Role       string `json:"role,omitempty"`
	Endpoint   string `json:"endpoint"`
}

// target builds the client configuration from the flags.
func (f *connFlags) target() (*clusterTarget, error) {
	t, err := f.load()
	if err != nil {
		return nil, err
	}
	if f.timeout > 0 {
		t.cfg.RequestTimeout = f.timeout
	}
	return t, nil
}

func (f *connFlags) load() (*clusterTarget, error) {
	switch {
	case f.cluster != "" && len(f.endpoints) > 0:
		return nil, errors.New("give either --cluster or --endpoints, not both")
	case f.cluster != "":
		cfg, file, err := client.LoadClusterDir(f.cluster, f.role)
		if err != nil {
			return nil, err
		}
		return &clusterTarget{cfg: cfg, file: file}, nil
	case len(f.endpoints) > 0:
		return f.fromEndpoints()
	default:
		return nil, errors.New("no cluster given: use --cluster DIR, or --endpoints with --election, --ca, --cert and --key")
	}
}

func (f *connFlags) fromEndpoints() (*clusterTarget, error) {
	var missing []string
	for name, v := range map[string]string{"--election": f.election, "--ca": f.ca, "--cert": f.cert, "--key": f.key} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("--endpoints needs %s", strings.Join(missing, ", "))
	}
	tlsCfg, err := client.LoadTLSFiles(f.ca, f.cert, f.key, f.election)
	if err != nil {
		return nil, err
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = f.endpoints
	cfg.TLS = tlsCfg
	return &clusterTarget{cfg: cfg}, nil
}

// dial returns a client for the flags; the caller closes it.
func (f *connFlags) dial() (*client.Client, *clusterTarget, error) {
	t, err := f.target()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(t.cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, t, nil
}

// nodeAnswer is one node's answer to Node, or why it gave none.
type nodeAnswer struct {
	node targetNode
	info *urnepb.NodeInfo
	err  error
}

// askNodes asks every node for its Node info at once, each with a short timeout.
func askNodes(ctx context.Context, c *client.Client, nodes []targetNode) []nodeAnswer {
	out := make([]nodeAnswer, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, nodeTimeout)
			defer cancel()
			info, err := c.Node(ctx, n.Endpoint)
			out[i] = nodeAnswer{node: n, info: info, err: err}
		})
	}
	wg.Wait()
	return out
}

// agreedLeader returns the leader every node answered with, or "" when a node gave no answer,
// knows no leader, or names another one.
func agreedLeader(answers []nodeAnswer) string {
	leader := ""
	for _, a := range answers {
		id := a.info.GetLeaderId()
		if a.info == nil || id == "" || leader != "" && id != leader {
			return ""
		}
		leader = id
	}
	return leader
}

// seenLeader returns the leader as the answering nodes see it: the node that says it leads
// in the highest term, or else the leader named by the answer of the highest term.
func seenLeader(answers []nodeAnswer) string {
	var best *urnepb.NodeInfo
	for _, a := range answers {
		info := a.info
		if info == nil || info.GetLeaderId() == "" {
			continue
		}
		self := info.GetRaftState() == raftLeader && info.GetLeaderId() == info.GetId()
		bestSelf := best != nil && best.GetRaftState() == raftLeader
		if best == nil || info.GetTerm() > best.GetTerm() || info.GetTerm() == best.GetTerm() && self && !bestSelf {
			best = info
		}
	}
	return best.GetLeaderId()
}

// closeClient closes a client whose errors on close have nothing left to say.
func closeClient(c *client.Client) { _ = c.Close() }
