package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/test/harness"
)

func TestSideResolvesNodesAndDatacenters(t *testing.T) {
	nodes := []targetNode{{ID: "dc1-a", Datacenter: "dc1"}, {ID: "dc1-b", Datacenter: "dc1"}, {ID: "wit-a", Datacenter: "dc3"}}
	got, err := side(nodes, "dc1,wit-a,dc1-a")
	if err != nil || ids(got) != "dc1-a,dc1-b,wit-a" {
		t.Fatalf("side = %v, %v", ids(got), err)
	}
	if _, err := side(nodes, "dc9"); err == nil || !strings.Contains(err.Error(), "dc9") {
		t.Fatalf("unknown side: %v", err)
	}
}

func chaosJSON(t *testing.T, out string) chaosReport {
	t.Helper()
	var r chaosReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	return r
}

func TestChaosRefusedWithoutChaosEnabled(t *testing.T) {
	c := harness.New(t, "3")
	out, _, code := runCLI(t, "chaos", "partition", "dc1-a", "dc1-b", "--cluster", c.Dir, "-o", "json")
	if code == 0 {
		t.Fatalf("chaos accepted by nodes started without chaos:\n%s", out)
	}
	r := chaosJSON(t, out)
	if len(r.Nodes) != 2 {
		t.Fatalf("asked %d nodes, want the two sides", len(r.Nodes))
	}
	for _, n := range r.Nodes {
		if !strings.Contains(n.Error, `"chaos": true`) {
			t.Errorf("%s: error %q does not say how to enable chaos", n.Node, n.Error)
		}
	}
}

func TestChaosCommandsPlanAndList(t *testing.T) {
	c := harness.Prepare(t, "3")
	for _, id := range c.IDs() {
		cfg := c.Config(id)
		cfg.Chaos = true
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(cluster.NodeConfigPath(c.Dir, id), b, 0o600); err != nil {
			t.Fatal(err)
		}
		c.Start(id)
	}
	c.WaitLeader()
	out, _, code := runCLI(t, "chaos", "partition", "dc1-a", "dc1-b,dc1-c", "--cluster", c.Dir, "-o", "json")
	if code != 0 {
		t.Fatalf("partition: exit %d\n%s", code, out)
	}
	if r := chaosJSON(t, out); len(r.Nodes) != 3 {
		t.Fatalf("partition reached %v, want every node of both sides", r.Nodes)
	}
	out, _, _ = runCLI(t, "chaos", "delay", "--from", "dc1-b", "--to", "dc1-c", "--by", "20ms", "--cluster", c.Dir, "-o", "json")
	if r := chaosJSON(t, out); len(r.Nodes) != 2 {
		t.Fatalf("delay reached %v", r.Nodes)
	}
	out, _, code = runCLI(t, "chaos", "list", "--cluster", c.Dir, "-o", "json")
	faults := map[string]string{}
	for _, n := range chaosJSON(t, out).Nodes {
		faults[n.Node] = strings.Join(n.Faults, "; ")
	}
	want := map[string][]string{
		"dc1-a": {"block dc1-a->dc1-b", "block dc1-b->dc1-a", "block dc1-a->dc1-c", "block dc1-c->dc1-a"},
		"dc1-b": {"block dc1-a->dc1-b", "delay dc1-b->dc1-c by 20ms"},
		"dc1-c": {"block dc1-c->dc1-a", "delay dc1-b->dc1-c by 20ms"},
	}
	for id, wants := range want {
		for _, w := range wants {
			if !strings.Contains(faults[id], w) {
				t.Errorf("%s lists %q, want it to hold %q (exit %d)", id, faults[id], w, code)
			}
		}
	}
	out, _, code = runCLI(t, "chaos", "heal", "--cluster", c.Dir, "-o", "json")
	for _, n := range chaosJSON(t, out).Nodes {
		if len(n.Faults) != 0 || code != 0 {
			t.Errorf("%s still lists %v after heal", n.Node, n.Faults)
		}
	}
	if !strings.Contains(c.Log("dc1-a"), `"msg":"chaos action"`) {
		t.Errorf("dc1-a did not log the chaos actions")
	}
	if _, errOut, code := runCLI(t, "chaos", "isolate", "nobody", "--cluster", c.Dir); code == 0 || !strings.Contains(errOut, "nobody") {
		t.Errorf("isolate of an unknown node: exit %d, %q", code, errOut)
	}
}
