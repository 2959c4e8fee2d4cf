package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
)

// digestSettle is how long `operator digest` waits for the nodes to reach the same applied
// index before it compares digests taken at different indexes.
const digestSettle = 10 * time.Second

func (a *app) operatorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Cluster membership, leadership, key rotation and state checks",
	}
	cmd.AddCommand(
		a.operatorPeersCommand(),
		a.operatorTransferCommand(),
		a.operatorRemoveCommand(),
		a.operatorRotateKeyCommand(),
		a.operatorDigestCommand(),
		a.operatorPromoteDCCommand(),
	)
	cmd.AddCommand(a.operatorAccountCommands()...)
	return cmd
}

// operatorCmd builds a command that dials the cluster with the operator certificate and
// hands the client to run.
func operatorCmd(use, short string, run func(ctx context.Context, c *client.Client, t *clusterTarget) error) (*cobra.Command, *connFlags) {
	var conn *connFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			return run(cmd.Context(), c, t)
		},
	}
	conn = addConnFlags(cmd, roleOperator)
	return cmd, conn
}

// peerView is one server of `operator peers`.
type peerView struct {
	ID           string `json:"id"`
	Datacenter   string `json:"datacenter"`
	Role         string `json:"role"`
	Suffrage     string `json:"suffrage"`
	GossipStatus string `json:"gossip_status"`
	Leader       bool   `json:"leader"`
	RaftAddress  string `json:"raft_address"`
	GRPCAddress  string `json:"grpc_address"`
}

func (a *app) operatorPeersCommand() *cobra.Command {
	cmd, _ := operatorCmd("peers", "List the raft configuration with each server's gossip state",
		func(ctx context.Context, c *client.Client, _ *clusterTarget) error {
			resp, err := c.Peers(ctx)
			if err != nil {
				return err
			}
			r := struct {
				Leader             string     `json:"leader"`
				ConfigurationIndex uint64     `json:"configuration_index"`
				Peers              []peerView `json:"peers"`
			}{Leader: resp.GetLeaderId(), ConfigurationIndex: resp.GetConfigurationIndex(), Peers: []peerView{}}
			for _, p := range resp.GetPeers() {
				r.Peers = append(r.Peers, peerView{ID: p.GetId(), Datacenter: p.GetDatacenter(), Role: p.GetRole(),
					Suffrage: p.GetSuffrage(), GossipStatus: p.GetGossipStatus(), Leader: p.GetLeader(),
					RaftAddress: p.GetRaftAddress(), GRPCAddress: p.GetGrpcAddress()})
			}
			return a.emit(r, func(w io.Writer) {
				rows := make([]string, len(r.Peers))
				for i, p := range r.Peers {
					id := p.ID
					if p.Leader {
						id += " *"
					}
					rows[i] = strings.Join([]string{id, p.Datacenter, p.Role, p.Suffrage, p.GossipStatus, p.RaftAddress, p.GRPCAddress}, "\t")
				}
				table(w, "ID\tDC\tROLE\tSUFFRAGE\tGOSSIP\tRAFT\tGRPC", rows)
				fprintf(w, "\nleader: %s; configuration at index %d\n", r.Leader, r.ConfigurationIndex)
			})
		})
	return cmd
}

func (a *app) operatorTransferCommand() *cobra.Command {
	var to string
	cmd, _ := operatorCmd("transfer-leader [--to ID]", "Hand leadership to a node, or to the most up-to-date follower",
		func(ctx context.Context, c *client.Client, _ *clusterTarget) error {
			resp, err := c.TransferLeadership(ctx, to)
			if err != nil {
				return err
			}
			r := struct {
				NewLeader string `json:"new_leader"`
			}{resp.GetNewLeaderId()}
			return a.emit(r, func(w io.Writer) { fprintf(w, "leader is now %s\n", r.NewLeader) })
		})
	cmd.Flags().StringVar(&to, "to", "", "node id to hand leadership to (default: raft picks)")
	return cmd
}

func (a *app) operatorRemoveCommand() *cobra.Command {
	var id string
	cmd, _ := operatorCmd("remove --id ID", "Remove a server from the raft configuration",
		func(ctx context.Context, c *client.Client, _ *clusterTarget) error {
			if err := c.RemoveServer(ctx, id); err != nil {
				return err
			}
			r := struct {
				Removed string `json:"removed"`
			}{id}
			return a.emit(r, func(w io.Writer) { fprintf(w, "removed %s from the configuration\n", id) })
		})
	cmd.Flags().StringVar(&id, "id", "", "node id")
	must(cmd.MarkFlagRequired("id"))
	return cmd
}

// rotation is one node's answer to `operator rotate-key`.
type rotation struct {
	Node         string   `json:"node"`
	Endpoint     string   `json:"endpoint"`
	PrimaryKeyID uint32   `json:"primary_key_id,omitempty"`
	KeyIDs       []uint32 `json:"key_ids,omitempty"`
	Error        string   `json:"error,omitempty"`
}

func (a *app) operatorRotateKeyCommand() *cobra.Command {
	var nodeID string
	var all bool
	cmd, _ := operatorCmd("rotate-key (--node ID | --all)", "Add a data key to nodes' keyrings and make it primary",
		func(ctx context.Context, c *client.Client, t *clusterTarget) error {
			targets, err := rotationTargets(t, nodeID, all)
			if err != nil {
				return err
			}
			results, failed := rotateKeys(ctx, c, targets)
			err = a.emit(struct {
				Nodes []rotation `json:"nodes"`
			}{results}, func(w io.Writer) { printRotations(w, results) })
			if err == nil && failed > 0 {
				err = &exitError{code: 1, msg: fmt.Sprintf("key rotation failed on %d of %d nodes", failed, len(results))}
			}
			return err
		})
	cmd.Flags().StringVar(&nodeID, "node", "", "node id (or host:port) whose keyring rotates")
	cmd.Flags().BoolVar(&all, "all", false, "rotate the keyring of every node")
	cmd.MarkFlagsMutuallyExclusive("node", "all")
	cmd.MarkFlagsOneRequired("node", "all")
	return cmd
}

func rotationTargets(t *clusterTarget, nodeID string, all bool) ([]targetNode, error) {
	if all {
		return t.nodes(), nil
	}
	ep, err := t.endpointOf(nodeID)
	if err != nil {
		return nil, err
	}
	return []targetNode{{ID: nodeID, Endpoint: ep}}, nil
}

// rotateKeys rotates one node after the other: each call adds a key, so none is retried.
func rotateKeys(ctx context.Context, c *client.Client, targets []targetNode) ([]rotation, int) {
	var out []rotation
	failed := 0
	for _, n := range targets {
		r := rotation{Node: n.ID, Endpoint: n.Endpoint}
		resp, err := c.RotateKey(ctx, n.Endpoint)
		if err != nil {
			r.Error = err.Error()
			failed++
		} else {
			r.Node, r.PrimaryKeyID, r.KeyIDs = resp.GetNodeId(), resp.GetPrimaryKeyId(), resp.GetKeyIds()
		}
		out = append(out, r)
	}
	return out, failed
}

func printRotations(w io.Writer, results []rotation) {
	for _, r := range results {
		if r.Error != "" {
			fprintf(w, "%s: rotation failed: %s\n", r.Node, r.Error)
			continue
		}
		fprintf(w, "%s: primary data key is now %d (keys %v)\n", r.Node, r.PrimaryKeyID, r.KeyIDs)
	}
}

// digestView is one node's answer to `operator digest`.
type digestView struct {
	Node         string `json:"node"`
	Endpoint     string `json:"endpoint"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Digest       string `json:"digest,omitempty"`
	Error        string `json:"error,omitempty"`
}

// digestReport is the JSON of `operator digest`.
type digestReport struct {
	// Agree is true when every node answered at the same applied index with the same digest.
	Agree bool `json:"agree"`
	// Diverged is true when two nodes at the same applied index hold different states.
	Diverged bool         `json:"diverged"`
	Nodes    []digestView `json:"nodes"`
}

func (a *app) operatorDigestCommand() *cobra.Command {
	var settle time.Duration
	cmd, _ := operatorCmd("digest", "Compare the state machine digests of every node",
		func(ctx context.Context, c *client.Client, t *clusterTarget) error {
			r := compareDigests(ctx, c, t.nodes(), settle)
			err := a.emit(r, func(w io.Writer) { printDigests(w, r) })
			if err == nil && r.Diverged {
				err = &exitError{code: 1, msg: "nodes at the same applied index hold different states"}
			}
			return err
		})
	cmd.Flags().DurationVar(&settle, "settle", digestSettle, "how long to wait for the nodes to reach one applied index")
	return cmd
}

// compareDigests asks every node for its digest until all answer at one applied index or
// settle passes, then compares.
func compareDigests(ctx context.Context, c *client.Client, nodes []targetNode, settle time.Duration) digestReport {
	deadline := time.Now().Add(settle)
	for {
		views := askDigests(ctx, c, nodes)
		r := judgeDigests(views)
		if r.Agree || r.Diverged || time.Now().After(deadline) || ctx.Err() != nil {
			return r
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func askDigests(ctx context.Context, c *client.Client, nodes []targetNode) []digestView {
	out := make([]digestView, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, nodeTimeout)
			defer cancel()
			v := digestView{Node: n.ID, Endpoint: n.Endpoint}
			resp, err := c.StateDigest(ctx, n.Endpoint)
			if err != nil {
				v.Error = err.Error()
			} else {
				v.Node, v.AppliedIndex, v.Digest = resp.GetNodeId(), resp.GetAppliedIndex(), hex.EncodeToString(resp.GetDigest())
			}
			out[i] = v
		})
	}
	wg.Wait()
	return out
}

// judgeDigests: nodes agree when all answered at one index with one digest; they diverged
// when two answers at the same index differ.
func judgeDigests(views []digestView) digestReport {
	r := digestReport{Agree: len(views) > 0, Nodes: views}
	byIndex := map[uint64]string{}
	for _, v := range views {
		if v.Error != "" {
			r.Agree = false
			continue
		}
		if d, ok := byIndex[v.AppliedIndex]; ok && d != v.Digest {
			r.Diverged = true
		}
		byIndex[v.AppliedIndex] = v.Digest
	}
	if len(byIndex) != 1 || r.Diverged {
		r.Agree = false
	}
	return r
}

func printDigests(w io.Writer, r digestReport) {
	rows := make([]string, len(r.Nodes))
	for i, v := range r.Nodes {
		if v.Error != "" {
			rows[i] = fmt.Sprintf("%s\tunreachable\t%s", v.Node, v.Error)
			continue
		}
		rows[i] = fmt.Sprintf("%s\t%d\t%s", v.Node, v.AppliedIndex, v.Digest)
	}
	table(w, "NODE\tAPPLIED\tDIGEST", rows)
	switch {
	case r.Agree:
		fprintf(w, "\nall nodes agree\n")
	case r.Diverged:
		fprintf(w, "\nDIVERGED: nodes at the same applied index hold different states\n")
	default:
		fprintf(w, "\nno verdict: not every node answered at the same applied index\n")
	}
}
