package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
)

// Defaults of `urne dev`.
const (
	defaultDevElection = "dev"
	defaultReadyWait   = 60 * time.Second
)

// devFlags are the flags every `urne dev` command shares.
type devFlags struct {
	dir    string
	binary string
}

func addDevFlags(cmd *cobra.Command) *devFlags {
	f := &devFlags{}
	cmd.PersistentFlags().StringVar(&f.dir, "dir", "", "cluster folder of the local cluster")
	cmd.PersistentFlags().StringVar(&f.binary, "urne-binary", "", "urne binary the nodes run (default: this one)")
	must(cmd.PersistentFlags().MarkHidden("urne-binary"))
	return f
}

func (f *devFlags) open() (*devCluster, error) {
	if f.dir == "" {
		return nil, errors.New("--dir is required")
	}
	return openDevCluster(f.dir, f.binary)
}

func (a *app) devCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole cluster as local processes on loopback, for demos and tests",
	}
	f := addDevFlags(cmd)
	cmd.AddCommand(a.devUpCommand(f), a.devDownCommand(f), a.devKillCommand(f), a.devStartCommand(f), a.devPSCommand(f))
	return cmd
}

// upOptions are the inputs of `urne dev up`.
type upOptions struct {
	dir, binary, topology, election string
	wait                            time.Duration
	chaos                           bool
}

// devNodeReport is one node in the JSON of the dev commands.
type devNodeReport struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	Role       string `json:"role"`
	GRPC       string `json:"grpc"`
	PID        int    `json:"pid"`
	Started    bool   `json:"started"`
}

// upReport is the JSON of `urne dev up`.
type upReport struct {
	Dir        string          `json:"dir"`
	ElectionID string          `json:"election_id"`
	Created    bool            `json:"created"`
	Leader     string          `json:"leader"`
	Endpoints  []string        `json:"endpoints"`
	Nodes      []devNodeReport `json:"nodes"`
}

func (a *app) devUpCommand(f *devFlags) *cobra.Command {
	o := upOptions{}
	cmd := &cobra.Command{
		Use:   "up --dir DIR",
		Short: "Create the cluster folder if needed, start the nodes that are down, wait for a leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.dir, o.binary = f.dir, f.binary
			_, r, err := a.devUp(cmd.Context(), o)
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) { printUp(w, r) })
		},
	}
	cmd.Flags().StringVar(&o.topology, "topology", defaultTopology, "layout when the folder is created: 2+2+1, 2+2, 3+2 or N")
	cmd.Flags().StringVar(&o.election, "election", defaultDevElection, "election id when the folder is created")
	cmd.Flags().DurationVar(&o.wait, "wait", defaultReadyWait, "how long to wait for every node and a leader")
	cmd.Flags().BoolVar(&o.chaos, "chaos", false, "when the folder is created: let `urne chaos` inject faults")
	return cmd
}

// devUp creates the cluster folder when it has no cluster.json, starts every node that is not
// running and waits until all answer and agree on a leader.
func (a *app) devUp(ctx context.Context, o upOptions) (*devCluster, *upReport, error) {
	if o.dir == "" {
		return nil, nil, errors.New("--dir is required")
	}
	created, err := ensureClusterDir(o)
	if err != nil {
		return nil, nil, err
	}
	d, err := openDevCluster(o.dir, o.binary)
	if err != nil {
		return nil, nil, err
	}
	r := &upReport{Dir: d.dir, ElectionID: d.file.ElectionID, Created: created, Endpoints: d.file.Endpoints()}
	for _, n := range d.file.Nodes {
		pid, started, err := d.start(n.ID)
		if err != nil {
			return d, nil, err
		}
		r.Nodes = append(r.Nodes, devNodeReport{ID: n.ID, Datacenter: n.Datacenter, Role: n.Role, GRPC: n.GRPC, PID: pid, Started: started})
	}
	if r.Leader, err = waitDevReady(ctx, d, d.ids(), true, o.wait); err != nil {
		return d, nil, err
	}
	return d, r, nil
}

// ensureClusterDir runs cluster init into dir unless it already holds a cluster.json.
func ensureClusterDir(o upOptions) (bool, error) {
	_, err := os.Stat(filepath.Join(o.dir, client.ClusterFileName))
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	_, err = cluster.Init(cluster.Options{ElectionID: o.election, Topology: o.topology, Out: o.dir,
		Host: defaultHost, Profile: node.ProfileLAN, Chaos: o.chaos})
	return err == nil, err
}

// waitDevReady waits for nodes ids with a fresh operator client, up to wait.
func waitDevReady(ctx context.Context, d *devCluster, ids []string, needLeader bool, wait time.Duration) (string, error) {
	c, err := d.operatorClient()
	if err != nil {
		return "", err
	}
	defer closeClient(c)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return d.waitReady(ctx, c, ids, needLeader)
}

func printUp(w io.Writer, r *upReport) {
	fprintf(w, "cluster %s (election %s) is up; leader %s\n\n", r.Dir, r.ElectionID, r.Leader)
	rows := make([]string, len(r.Nodes))
	for i, n := range r.Nodes {
		state := "already running"
		if n.Started {
			state = "started"
		}
		rows[i] = strings.Join([]string{n.ID, n.Datacenter, n.Role, n.GRPC, strconv.Itoa(n.PID), state}, "\t")
	}
	table(w, "ID\tDC\tROLE\tGRPC\tPID\tSTATE", rows)
	fprintf(w, "\nendpoints: %s\n", strings.Join(r.Endpoints, ","))
	fprintf(w, "try: urne status --cluster %s\n", r.Dir)
}

func (a *app) devDownCommand(f *devFlags) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "down --dir DIR",
		Short: "Stop every node: SIGTERM, then SIGKILL after the grace period",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			d, err := f.open()
			if err != nil {
				return err
			}
			results, err := d.stopAll(grace)
			if err != nil {
				return err
			}
			r := struct {
				Dir   string       `json:"dir"`
				Nodes []stopResult `json:"nodes"`
			}{d.dir, results}
			return a.emit(r, func(w io.Writer) {
				for _, s := range results {
					fprintf(w, "%s\t%s\n", s.ID, s.Result)
				}
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", stopGrace, "time a node gets to stop after SIGTERM")
	return cmd
}

// devNodeResult is the JSON of `dev kill` and `dev start`.
type devNodeResult struct {
	ID      string `json:"id"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	Changed bool   `json:"changed"`
}

func (a *app) devKillCommand(f *devFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "kill --dir DIR --node ID",
		Short: "SIGKILL one node (a crash) and wait until it is gone",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			d, err := f.open()
			if err != nil {
				return err
			}
			if _, err := d.node(id); err != nil {
				return err
			}
			pid, err := d.kill(id)
			if err != nil {
				return err
			}
			r := devNodeResult{ID: id, PID: pid, Changed: pid != 0}
			return a.emit(r, func(w io.Writer) {
				if pid == 0 {
					fprintf(w, "%s was not running\n", id)
					return
				}
				fprintf(w, "killed %s (pid %d)\n", id, pid)
			})
		},
	}
	cmd.Flags().StringVar(&id, "node", "", "node id")
	must(cmd.MarkFlagRequired("node"))
	return cmd
}

func (a *app) devStartCommand(f *devFlags) *cobra.Command {
	var id string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "start --dir DIR --node ID",
		Short: "Start one node unless it runs, and wait until it answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := f.open()
			if err != nil {
				return err
			}
			pid, started, err := d.start(id)
			if err != nil {
				return err
			}
			// A node alone cannot elect a leader, so only its answer is waited for.
			if _, err := waitDevReady(cmd.Context(), d, []string{id}, false, wait); err != nil {
				return err
			}
			r := devNodeResult{ID: id, PID: pid, Running: true, Changed: started}
			return a.emit(r, func(w io.Writer) {
				if started {
					fprintf(w, "started %s (pid %d)\n", id, pid)
				} else {
					fprintf(w, "%s already runs (pid %d)\n", id, pid)
				}
			})
		},
	}
	cmd.Flags().StringVar(&id, "node", "", "node id")
	cmd.Flags().DurationVar(&wait, "wait", defaultReadyWait, "how long to wait for the node to answer")
	must(cmd.MarkFlagRequired("node"))
	return cmd
}

func (a *app) devPSCommand(f *devFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "ps --dir DIR",
		Short: "List the node processes of a local cluster",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			d, err := f.open()
			if err != nil {
				return err
			}
			var nodes []devNodeResult
			for _, id := range d.ids() {
				pid := d.pid(id)
				nodes = append(nodes, devNodeResult{ID: id, PID: pid, Running: pid != 0})
			}
			r := struct {
				Dir   string          `json:"dir"`
				Nodes []devNodeResult `json:"nodes"`
			}{d.dir, nodes}
			return a.emit(r, func(w io.Writer) {
				rows := make([]string, len(nodes))
				for i, n := range nodes {
					rows[i] = fmt.Sprintf("%s\t%d\t%v", n.ID, n.PID, n.Running)
				}
				table(w, "ID\tPID\tRUNNING", rows)
			})
		},
	}
}
