package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/transport/urnepb"
)

// chaosNote is printed by every chaos command: what it did is in each node's log.
const chaosNote = "every chaos action is logged by the nodes it reached (\"chaos action\", with the operator's identity)"

func (a *app) chaosCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Inject faults into a cluster started with chaos enabled (experiments before an election)",
		Long: "Inject network faults, failpoints and kills into the nodes of a cluster whose node.json\n" +
			"files say \"chaos\": true. Nodes without it refuse. Sides are comma-separated node ids or\n" +
			"datacenter names (dc1, dc2, dc3). " + chaosNote + ".",
	}
	cmd.AddCommand(a.chaosPartitionCommand(), a.chaosBlockCommand(), a.chaosDelayCommand(), a.chaosIsolateCommand(),
		a.chaosFailpointCommand(), a.chaosKillCommand(), a.chaosHealCommand(), a.chaosListCommand())
	return cmd
}

// chaosNode is one node's answer to a chaos command.
type chaosNode struct {
	Node     string   `json:"node"`
	Endpoint string   `json:"endpoint"`
	Faults   []string `json:"faults"`
	Error    string   `json:"error,omitempty"`
}

// chaosReport is the JSON of every chaos command.
type chaosReport struct {
	Action string      `json:"action"`
	Nodes  []chaosNode `json:"nodes"`
}

// chaosCmd builds a chaos command: plan turns the arguments into the calls to make.
func (a *app) chaosCmd(use, short string, args cobra.PositionalArgs, plan func(ctx context.Context, c *client.Client, nodes []targetNode, args []string) (string, []chaosCall, error)) *cobra.Command {
	var conn *connFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			nodes := identify(cmd.Context(), c, t.nodes())
			action, calls, err := plan(cmd.Context(), c, nodes, args)
			if err != nil {
				return err
			}
			return a.emitChaos(runChaos(cmd.Context(), c, action, calls))
		},
	}
	conn = addConnFlags(cmd, roleOperator)
	return cmd
}

// identify fills in the id and datacenter of nodes given by address only.
func identify(ctx context.Context, c *client.Client, nodes []targetNode) []targetNode {
	for i, n := range nodes {
		if n.ID != "" {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, nodeTimeout)
		if info, err := c.Node(ctx, n.Endpoint); err == nil {
			nodes[i].ID, nodes[i].Datacenter = info.GetId(), info.GetDatacenter()
		}
		cancel()
	}
	return nodes
}

// chaosCall is one request to one node.
type chaosCall struct {
	node targetNode
	do   func(ctx context.Context, c *client.Client, endpoint string) (*urnepb.ChaosState, error)
}

func runChaos(ctx context.Context, c *client.Client, action string, calls []chaosCall) chaosReport {
	r := chaosReport{Action: action, Nodes: []chaosNode{}}
	for _, call := range calls {
		ctx, cancel := context.WithTimeout(ctx, nodeTimeout)
		st, err := call.do(ctx, c, call.node.Endpoint)
		cancel()
		n := chaosNode{Node: call.node.ID, Endpoint: call.node.Endpoint, Faults: []string{}}
		if err != nil {
			n.Error = err.Error()
		} else {
			n.Node, n.Faults = st.GetNodeId(), describeFaults(st.GetFaults())
		}
		r.Nodes = append(r.Nodes, n)
	}
	return r
}

func (a *app) emitChaos(r chaosReport) error {
	failed := 0
	for _, n := range r.Nodes {
		if n.Error != "" {
			failed++
		}
	}
	err := a.emit(r, func(w io.Writer) {
		fprintf(w, "%s\n", r.Action)
		for _, n := range r.Nodes {
			if n.Error != "" {
				fprintf(w, "  %s: refused: %s\n", n.Node, n.Error)
				continue
			}
			fprintf(w, "  %s: %s\n", n.Node, orNone(strings.Join(n.Faults, "; ")))
		}
	})
	if err == nil && failed > 0 {
		err = &exitError{code: 1, msg: fmt.Sprintf("%d of %d nodes refused or did not answer", failed, len(r.Nodes))}
	}
	return err
}

func orNone(s string) string {
	if s == "" {
		return "no active fault"
	}
	return s
}

func describeFaults(faults []*urnepb.ChaosFault) []string {
	out := []string{}
	for _, f := range faults {
		switch f.GetKind() {
		case "isolate":
			out = append(out, "isolate "+f.GetFrom())
		case "delay":
			out = append(out, fmt.Sprintf("delay %s->%s by %s", f.GetFrom(), f.GetTo(), time.Duration(f.GetDelayNanos())))
		case "failpoint":
			out = append(out, fmt.Sprintf("failpoint %s=%s", f.GetFailpoint(), f.GetSpec()))
		default:
			out = append(out, fmt.Sprintf("%s %s->%s", f.GetKind(), f.GetFrom(), f.GetTo()))
		}
	}
	sort.Strings(out)
	return out
}

// side resolves comma-separated node ids and datacenter names to nodes.
func side(nodes []targetNode, spec string) ([]targetNode, error) {
	var out []targetNode
	seen := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		matched := false
		for _, n := range nodes {
			if n.ID != name && n.Datacenter != name {
				continue
			}
			matched = true
			if !seen[n.ID] {
				out, seen[n.ID] = append(out, n), true
			}
		}
		if !matched {
			return nil, fmt.Errorf("%q is neither a node id nor a datacenter of this cluster", name)
		}
	}
	return out, nil
}

// inject is the call that adds faults on a node, one after the other.
func inject(n targetNode, faults ...*urnepb.ChaosFault) chaosCall {
	return chaosCall{node: n, do: func(ctx context.Context, c *client.Client, ep string) (*urnepb.ChaosState, error) {
		var st *urnepb.ChaosState
		for _, f := range faults {
			var err error
			if st, err = c.ChaosInject(ctx, ep, f); err != nil {
				return nil, err
			}
		}
		return st, nil
	}}
}

// pairs asks every node of a and of b to apply fault(from, to) for each pair: a connection
// is checked by the node that dialed it, so both ends must know the rule.
func pairs(a, b []targetNode, fault func(from, to string) *urnepb.ChaosFault) []chaosCall {
	var order []targetNode
	per := map[string][]*urnepb.ChaosFault{}
	add := func(n targetNode, f *urnepb.ChaosFault) {
		if _, ok := per[n.ID]; !ok {
			order = append(order, n)
		}
		per[n.ID] = append(per[n.ID], f)
	}
	for _, x := range a {
		for _, y := range b {
			f := fault(x.ID, y.ID)
			add(x, f)
			add(y, f)
		}
	}
	calls := make([]chaosCall, len(order))
	for i, n := range order {
		calls[i] = inject(n, per[n.ID]...)
	}
	return calls
}

func ids(nodes []targetNode) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return strings.Join(out, ",")
}

func (a *app) chaosPartitionCommand() *cobra.Command {
	return a.chaosCmd("partition SIDE_A SIDE_B", "Cut every node of side A from every node of side B, both ways", cobra.ExactArgs(2),
		func(_ context.Context, _ *client.Client, nodes []targetNode, args []string) (string, []chaosCall, error) {
			x, err := side(nodes, args[0])
			if err != nil {
				return "", nil, err
			}
			y, err := side(nodes, args[1])
			if err != nil {
				return "", nil, err
			}
			calls := pairs(x, y, func(from, to string) *urnepb.ChaosFault {
				return &urnepb.ChaosFault{Kind: "partition", From: from, To: to}
			})
			return fmt.Sprintf("partition %s | %s", ids(x), ids(y)), calls, nil
		})
}

func (a *app) chaosBlockCommand() *cobra.Command {
	var from, to string
	cmd := a.chaosCmd("block --from SIDE --to SIDE", "Drop the traffic from one side to the other, one way", cobra.NoArgs,
		func(_ context.Context, _ *client.Client, nodes []targetNode, _ []string) (string, []chaosCall, error) {
			x, y, err := twoSides(nodes, from, to)
			if err != nil {
				return "", nil, err
			}
			calls := pairs(x, y, func(f, t string) *urnepb.ChaosFault { return &urnepb.ChaosFault{Kind: "block", From: f, To: t} })
			return fmt.Sprintf("block %s -> %s", ids(x), ids(y)), calls, nil
		})
	sideFlags(cmd, &from, &to)
	return cmd
}

func sideFlags(cmd *cobra.Command, from, to *string) {
	cmd.Flags().StringVar(from, "from", "", "sending side: node ids or datacenters, comma-separated")
	cmd.Flags().StringVar(to, "to", "", "receiving side: node ids or datacenters, comma-separated")
	must(cmd.MarkFlagRequired("from"))
	must(cmd.MarkFlagRequired("to"))
}

func twoSides(nodes []targetNode, from, to string) ([]targetNode, []targetNode, error) {
	x, err := side(nodes, from)
	if err != nil {
		return nil, nil, err
	}
	y, err := side(nodes, to)
	return x, y, err
}

func (a *app) chaosDelayCommand() *cobra.Command {
	var from, to string
	var by time.Duration
	var both bool
	cmd := a.chaosCmd("delay --from SIDE --to SIDE --by DURATION", "Hold the traffic from one side to the other", cobra.NoArgs,
		func(_ context.Context, _ *client.Client, nodes []targetNode, _ []string) (string, []chaosCall, error) {
			x, y, err := twoSides(nodes, from, to)
			if err != nil {
				return "", nil, err
			}
			delay := func(f, t string) *urnepb.ChaosFault {
				return &urnepb.ChaosFault{Kind: "delay", From: f, To: t, DelayNanos: int64(by)}
			}
			calls := pairs(x, y, delay)
			if both {
				calls = append(calls, pairs(y, x, delay)...)
			}
			return fmt.Sprintf("delay %s -> %s by %s (both ways: %v)", ids(x), ids(y), by, both), calls, nil
		})
	sideFlags(cmd, &from, &to)
	cmd.Flags().DurationVar(&by, "by", 100*time.Millisecond, "delay of each chunk of data")
	cmd.Flags().BoolVar(&both, "both", false, "delay the reverse direction too")
	return cmd
}

// chaosIsolateCommand partitions the node from every other one: clients still reach it, as
// they would a node whose datacenter link to its peers went down.
func (a *app) chaosIsolateCommand() *cobra.Command {
	return a.chaosCmd("isolate NODE", "Cut one node off from every peer (clients still reach it)", cobra.ExactArgs(1),
		func(_ context.Context, _ *client.Client, nodes []targetNode, args []string) (string, []chaosCall, error) {
			n, err := oneNode(nodes, args[0])
			if err != nil {
				return "", nil, err
			}
			var others []targetNode
			for _, o := range nodes {
				if o.ID != n.ID {
					others = append(others, o)
				}
			}
			calls := pairs([]targetNode{n}, others, func(from, to string) *urnepb.ChaosFault {
				return &urnepb.ChaosFault{Kind: "partition", From: from, To: to}
			})
			return "isolate " + n.ID, calls, nil
		})
}

func oneNode(nodes []targetNode, id string) (targetNode, error) {
	for _, n := range nodes {
		if n.ID == id {
			return n, nil
		}
	}
	return targetNode{}, fmt.Errorf("node %q is not in this cluster", id)
}

func (a *app) chaosFailpointCommand() *cobra.Command {
	var nodeID string
	cmd := a.chaosCmd("failpoint --node ID NAME=SPEC", "Arm a failpoint (binaries built with -tags failpoints)", cobra.ExactArgs(1),
		func(_ context.Context, _ *client.Client, nodes []targetNode, args []string) (string, []chaosCall, error) {
			n, err := oneNode(nodes, nodeID)
			if err != nil {
				return "", nil, err
			}
			name, spec, ok := strings.Cut(args[0], "=")
			if !ok {
				return "", nil, fmt.Errorf("failpoint %q: want NAME=SPEC, e.g. fsm/commit=enospc", args[0])
			}
			f := &urnepb.ChaosFault{Kind: "failpoint", Failpoint: name, Spec: spec}
			return fmt.Sprintf("failpoint %s=%s on %s", name, spec, n.ID), []chaosCall{inject(n, f)}, nil
		})
	cmd.Flags().StringVar(&nodeID, "node", "", "node id")
	must(cmd.MarkFlagRequired("node"))
	return cmd
}

func (a *app) chaosKillCommand() *cobra.Command {
	var nodeID string
	cmd := a.chaosCmd("kill --node ID", "End a node's process at once, as SIGKILL would", cobra.NoArgs,
		func(_ context.Context, _ *client.Client, nodes []targetNode, _ []string) (string, []chaosCall, error) {
			n, err := oneNode(nodes, nodeID)
			if err != nil {
				return "", nil, err
			}
			kill := chaosCall{node: n, do: func(ctx context.Context, c *client.Client, ep string) (*urnepb.ChaosState, error) {
				resp, err := c.ChaosKill(ctx, ep)
				return &urnepb.ChaosState{NodeId: resp.GetNodeId()}, err
			}}
			return "kill " + n.ID, []chaosCall{kill}, nil
		})
	cmd.Flags().StringVar(&nodeID, "node", "", "node id")
	must(cmd.MarkFlagRequired("node"))
	return cmd
}

func (a *app) chaosHealCommand() *cobra.Command {
	var nodeID string
	cmd := a.chaosCmd("heal [--node ID]", "Lift every fault, of one node or of all", cobra.NoArgs,
		func(_ context.Context, _ *client.Client, nodes []targetNode, _ []string) (string, []chaosCall, error) {
			return perNode(nodes, nodeID, "heal", func(ctx context.Context, c *client.Client, ep string) (*urnepb.ChaosState, error) {
				return c.ChaosHeal(ctx, ep)
			})
		})
	cmd.Flags().StringVar(&nodeID, "node", "", "node id (default: every node)")
	return cmd
}

func (a *app) chaosListCommand() *cobra.Command {
	return a.chaosCmd("list", "List the faults active on every node", cobra.NoArgs,
		func(_ context.Context, _ *client.Client, nodes []targetNode, _ []string) (string, []chaosCall, error) {
			return perNode(nodes, "", "list", func(ctx context.Context, c *client.Client, ep string) (*urnepb.ChaosState, error) {
				return c.ChaosList(ctx, ep)
			})
		})
}

// perNode makes the same call on one node, or on every node when id is empty.
func perNode(nodes []targetNode, id, action string, do func(context.Context, *client.Client, string) (*urnepb.ChaosState, error)) (string, []chaosCall, error) {
	if id != "" {
		n, err := oneNode(nodes, id)
		if err != nil {
			return "", nil, err
		}
		nodes = []targetNode{n}
	}
	var calls []chaosCall
	for _, n := range nodes {
		calls = append(calls, chaosCall{node: n, do: do})
	}
	return fmt.Sprintf("%s %s", action, ids(nodes)), calls, nil
}
