package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// nodeStatus is one row of `urne status`.
type nodeStatus struct {
	ID           string `json:"id"`
	Datacenter   string `json:"datacenter"`
	Role         string `json:"role"`
	Endpoint     string `json:"endpoint"`
	Reachable    bool   `json:"reachable"`
	Error        string `json:"error,omitempty"`
	RaftState    string `json:"raft_state,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	LastIndex    uint64 `json:"last_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	LeaderID     string `json:"leader_id,omitempty"`
	Leader       bool   `json:"leader"`
	Version      string `json:"version,omitempty"`
}

// statusReport is the JSON of `urne status`.
type statusReport struct {
	ElectionID string `json:"election_id,omitempty"`
	Leader     string `json:"leader"`
	// LeaderAnswers is false when the nodes name a leader that did not answer (it just died
	// and the others have not noticed yet).
	LeaderAnswers bool         `json:"leader_answers"`
	Reachable     int          `json:"reachable"`
	Nodes         []nodeStatus `json:"nodes"`
}

func (a *app) statusCommand() *cobra.Command {
	var conn *connFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Ask every node for its raft state and indexes; show the leader",
		Long: "Ask every node at once. Nodes that do not answer within a few seconds are shown as\n" +
			"unreachable; the command succeeds as long as it could ask.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, t, err := conn.dial()
			if err != nil {
				return err
			}
			defer closeClient(c)
			answers := askNodes(cmd.Context(), c, t.nodes())
			r := buildStatus(answers)
			if t.file != nil {
				r.ElectionID = t.file.ElectionID
			}
			return a.emit(r, func(w io.Writer) { printStatus(w, r) })
		},
	}
	conn = addConnFlags(cmd, roleOperator)
	return cmd
}

func buildStatus(answers []nodeAnswer) statusReport {
	r := statusReport{Leader: seenLeader(answers), Nodes: make([]nodeStatus, len(answers))}
	for i, ans := range answers {
		s := nodeStatus{ID: ans.node.ID, Datacenter: ans.node.Datacenter, Role: ans.node.Role, Endpoint: ans.node.Endpoint}
		if ans.err != nil {
			s.Error = ans.err.Error()
		} else {
			info := ans.info
			r.Reachable++
			s.Reachable = true
			s.ID, s.Datacenter, s.Role = info.GetId(), info.GetDatacenter(), info.GetRole()
			s.RaftState, s.Term, s.LastIndex = info.GetRaftState(), info.GetTerm(), info.GetLastIndex()
			s.CommitIndex, s.AppliedIndex, s.LeaderID = info.GetCommitIndex(), info.GetAppliedIndex(), info.GetLeaderId()
			s.Version = info.GetVersion()
		}
		s.Leader = r.Leader != "" && s.ID == r.Leader
		r.LeaderAnswers = r.LeaderAnswers || s.Leader && s.Reachable
		r.Nodes[i] = s
	}
	return r
}

func printStatus(w io.Writer, r statusReport) {
	rows := make([]string, len(r.Nodes))
	for i, n := range r.Nodes {
		id := n.ID
		if id == "" {
			id = n.Endpoint
		}
		if n.Leader {
			id += " *"
		}
		if !n.Reachable {
			rows[i] = strings.Join([]string{id, n.Datacenter, n.Role, "unreachable", "", "", "", n.Endpoint}, "\t")
			continue
		}
		rows[i] = strings.Join([]string{id, n.Datacenter, n.Role, n.RaftState,
			fmt.Sprint(n.Term), fmt.Sprint(n.LastIndex), fmt.Sprint(n.AppliedIndex), n.Endpoint}, "\t")
	}
	table(w, "ID\tDC\tROLE\tSTATE\tTERM\tLAST\tAPPLIED\tENDPOINT", rows)
	leader := r.Leader
	switch {
	case leader == "":
		leader = "none known"
	case !r.LeaderAnswers:
		leader += ", named by the others but not answering"
	}
	fprintf(w, "\nleader: %s (%d of %d nodes answered)\n", leader, r.Reachable, len(r.Nodes))
}
