package main

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
)

// integrityTimeout bounds one node's integrity check, replica comparison included.
const integrityTimeout = 30 * time.Second

func (a *app) integrityCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "integrity",
		Short: "Run the integrity check of the nodes",
	}
	cmd.AddCommand(a.integrityCheckCommand())
	return cmd
}

// integrityNode is one node's answer to `integrity check`.
type integrityNode struct {
	Node     string             `json:"node"`
	Endpoint string             `json:"endpoint"`
	OK       bool               `json:"ok"`
	Index    uint64             `json:"applied_index,omitempty"`
	Error    string             `json:"error,omitempty"`
	Findings []integrityFinding `json:"findings,omitempty"`
}

type integrityFinding struct {
	Kind   string   `json:"kind"`
	OK     bool     `json:"ok"`
	Detail string   `json:"detail"`
	Nodes  []string `json:"nodes,omitempty"`
}

func (a *app) integrityCheckCommand() *cobra.Command {
	var conn *connFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Have every node check the register, the seal, the ballot box, its binary and the replicas now",
		Long: "Have every node run its integrity check now: the chain and timestamps of the activity\n" +
			"register, the seal recomputed over the configuration, scrutins, lists and roll, the ballot\n" +
			"box against its running digest, the node binary against the sealed build, and the\n" +
			"agreement of the replicas' state digests at the same applied index. Each result enters\n" +
			"the register; a failure is mailed to the bureau members and the organizers through the\n" +
			"outbox. The exit code is 2 when any node found a failure.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			return a.checkIntegrity(cmd.Context(), c, t)
		},
	}
	conn = addConnFlags(cmd, roleOrganizer)
	return cmd
}

func (a *app) checkIntegrity(ctx context.Context, c *client.Client, t *clusterTarget) error {
	nodes := t.nodes()
	out := make([]integrityNode, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { out[i] = checkNode(ctx, c, n) })
	}
	wg.Wait()
	ok := true
	for _, r := range out {
		ok = ok && r.OK
	}
	res := struct {
		OK    bool            `json:"ok"`
		Nodes []integrityNode `json:"nodes"`
	}{ok, out}
	if err := a.emit(res, func(w io.Writer) { printIntegrity(w, out) }); err != nil {
		return err
	}
	if !ok {
		return &exitError{code: 2, msg: "integrity check failed"}
	}
	return nil
}

func checkNode(ctx context.Context, c *client.Client, n targetNode) integrityNode {
	ctx, cancel := context.WithTimeout(ctx, integrityTimeout)
	defer cancel()
	r := integrityNode{Node: n.ID, Endpoint: n.Endpoint}
	rep, err := c.CheckIntegrity(ctx, n.Endpoint)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Node, r.OK, r.Index = rep.GetNodeId(), rep.GetOk(), rep.GetAppliedIndex()
	for _, f := range rep.GetFindings() {
		r.Findings = append(r.Findings, integrityFinding{Kind: f.GetKind(), OK: f.GetOk(), Detail: f.GetDetail(), Nodes: f.GetNodes()})
	}
	return r
}

func printIntegrity(w io.Writer, nodes []integrityNode) {
	for _, n := range nodes {
		name := n.Node
		if name == "" {
			name = n.Endpoint
		}
		switch {
		case n.Error != "":
			fprintf(w, "%s: NO ANSWER: %s\n", name, n.Error)
			continue
		case n.OK:
			fprintf(w, "%s: OK (applied index %d)\n", name, n.Index)
		default:
			fprintf(w, "%s: FAILED (applied index %d)\n", name, n.Index)
		}
		for _, f := range n.Findings {
			state := "ok    "
			if !f.OK {
				state = "FAILED"
			}
			fprintf(w, "  %s %-10s %s\n", state, f.Kind, f.Detail)
		}
	}
}
