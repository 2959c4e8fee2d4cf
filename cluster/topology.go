package cluster

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urne-vote/urne/node"
)

// Datacenter names and id prefixes of the layouts `urne cluster init` writes.
const (
	witnessDatacenter = "dc3"
	witnessPrefix     = "wit"
	// maxTopologyNodes keeps clusters to sizes raft handles well and ids to one letter.
	maxTopologyNodes = 15
)

// topologyNode is one node of a layout, before it has addresses.
type topologyNode struct {
	ID         string
	Datacenter string
	Role       node.Role
}

// parseTopology reads a layout: "A+B" (A voters in dc1, B in dc2), "A+B+C" (plus C witnesses
// at site dc3), or "N" (N voters in dc1, for tests). The default is "2+2+1".
func parseTopology(s string) ([]topologyNode, error) {
	parts := strings.Split(s, "+")
	if len(parts) > 3 {
		return nil, fmt.Errorf("topology %q: want N, A+B or A+B+C (for example 2+2+1)", s)
	}
	counts := make([]int, len(parts))
	total := 0
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("topology %q: %q is not a positive node count; want N, A+B or A+B+C (for example 2+2+1)", s, p)
		}
		counts[i] = n
		total += n
	}
	if total > maxTopologyNodes {
		return nil, fmt.Errorf("topology %q has %d nodes; at most %d are supported", s, total, maxTopologyNodes)
	}
	var nodes []topologyNode
	for i, n := range counts {
		nodes = append(nodes, siteNodes(i, n)...)
	}
	return nodes, nil
}

// siteNodes names the n nodes of site i: dc1-a, dc1-b, ... and wit-a, ... for the third site.
func siteNodes(site, n int) []topologyNode {
	dc, prefix, role := fmt.Sprintf("dc%d", site+1), fmt.Sprintf("dc%d", site+1), node.RoleVoter
	if site == 2 {
		dc, prefix, role = witnessDatacenter, witnessPrefix, node.RoleWitness
	}
	out := make([]topologyNode, n)
	for j := range n {
		out[j] = topologyNode{ID: fmt.Sprintf("%s-%c", prefix, 'a'+j), Datacenter: dc, Role: role}
	}
	return out
}
