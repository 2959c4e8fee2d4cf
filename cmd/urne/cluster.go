package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
)

// Defaults of `urne cluster init`.
const (
	defaultTopology = "2+2+1"
	defaultHost     = "127.0.0.1"
)

func (a *app) clusterCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create the keys, certificates and configuration of an election's cluster",
	}
	cmd.AddCommand(a.clusterInitCommand(), a.clusterIssueClientCommand())
	return cmd
}

func (a *app) clusterInitCommand() *cobra.Command {
	var o cluster.Options
	var profile string
	var advertise []string
	cmd := &cobra.Command{
		Use:   "init --election ID --out DIR",
		Short: "Write a cluster folder: CA, node and client certificates, gossip key, KEKs, node configs",
		Long: "Write a new cluster folder. Topologies: 2+2+1 (dc1 and dc2 two voters each, one witness\n" +
			"at site dc3), 2+2, 3+2, or N (N voters in dc1, for tests). Node ids are dc1-a, dc1-b,\n" +
			"dc2-a, ..., wit-a. Ports are base+10*i+{0 raft, 1 grpc, 2 gossip, 3 metrics}; with\n" +
			"--base-port 0 free ports are picked on --host. The CA key (ca/ca.key) belongs offline\n" +
			"once the cluster runs.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			o.Profile = node.Profile(profile)
			adv, err := parseAdvertise(advertise)
			if err != nil {
				return err
			}
			o.Advertise = adv
			file, err := cluster.Init(o)
			if err != nil {
				return err
			}
			return a.emitCluster(o.Out, file)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.ElectionID, "election", "", "election id (letters, digits, '.', '_', '-')")
	fl.StringVar(&o.Topology, "topology", defaultTopology, "layout: 2+2+1, 2+2, 3+2 or N")
	fl.StringVar(&o.Out, "out", "", "folder to create; it must not exist or be empty")
	fl.StringVar(&o.Host, "host", defaultHost, "address every node binds to")
	fl.IntVar(&o.BasePort, "base-port", 0, "first port; 0 picks free ports")
	fl.StringSliceVar(&advertise, "advertise-hosts", nil, "id=host,... host other nodes reach a node at")
	fl.StringVar(&profile, "profile", string(node.ProfileLAN), "raft timeouts: lan or wan")
	fl.BoolVar(&o.Chaos, "chaos", false, "let `urne chaos` inject faults into every node (experiments only)")
	must(cmd.MarkFlagRequired("election"))
	must(cmd.MarkFlagRequired("out"))
	return cmd
}

// parseAdvertise reads id=host pairs.
func parseAdvertise(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		id, host, ok := strings.Cut(p, "=")
		if !ok || id == "" || host == "" {
			return nil, fmt.Errorf("--advertise-hosts %q: want id=host", p)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("--advertise-hosts names node %q twice", id)
		}
		out[id] = host
	}
	return out, nil
}

// clusterReport is the JSON of `cluster init`.
type clusterReport struct {
	Dir        string               `json:"dir"`
	ElectionID string               `json:"election_id"`
	Topology   string               `json:"topology"`
	Nodes      []client.ClusterNode `json:"nodes"`
}

func (a *app) emitCluster(dir string, file *client.ClusterFile) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	r := clusterReport{Dir: abs, ElectionID: file.ElectionID, Topology: file.Topology, Nodes: file.Nodes}
	return a.emit(r, func(w io.Writer) {
		fprintf(w, "cluster folder %s for election %s (topology %s)\n\n", abs, file.ElectionID, file.Topology)
		rows := make([]string, len(file.Nodes))
		for i, n := range file.Nodes {
			rows[i] = strings.Join([]string{n.ID, n.Datacenter, n.Role, n.GRPC, n.Raft, n.Gossip, n.Metrics}, "\t")
		}
		table(w, "ID\tDC\tROLE\tGRPC\tRAFT\tGOSSIP\tMETRICS", rows)
		fprintf(w, "\nMove %s offline once the nodes have their certificates.\n", filepath.Join(abs, "ca", "ca.key"))
	})
}
