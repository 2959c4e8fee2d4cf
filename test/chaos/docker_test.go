package chaos_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/chaos"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/linearize"
)

// Multi-host scenarios on Docker: one container per node from the FROM-scratch image of
// deploy/Dockerfile, one network per site (dc1, dc2, dc3) created by the test, and every node
// attached to every site's network with its own address on its home site's. Partitions are
// `docker network disconnect`, crashes `docker kill`. Nothing is pulled: the image is the
// static binary alone. Skipped when no Docker engine answers.

// dockerCluster is the containers, networks and image of one test.
type dockerCluster struct {
	t        *testing.T
	name     string // prefix of every container, network and image
	image    string
	dir      string
	file     *client.ClusterFile
	subnet   string // "10.N": site s is 10.N.s.0/24
	nodes    []client.ClusterNode
	homes    map[string]int // node id -> site number
	detached map[[2]string]bool
}

func docker(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (d *dockerCluster) must(args ...string) {
	d.t.Helper()
	if out, err := docker(args...); err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// requireDocker skips the test unless a Docker engine answers.
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker scenario: skipped with -short")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("Docker scenarios skipped: no docker command on PATH")
	}
	if out, err := docker("info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("Docker scenarios skipped: no Docker engine answers (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
}

func siteOf(dc string) int { return int(dc[len(dc)-1] - '0') }

func (d *dockerCluster) ip(site, i int) string { return fmt.Sprintf("%s.%d.%d", d.subnet, site, 10+i) }

// homeIP is the address of node i on its home site's network.
func (d *dockerCluster) homeIP(i int) string { return d.ip(siteOf(d.nodes[i].Datacenter), i) }

func (d *dockerCluster) network(site int) string { return fmt.Sprintf("%s-dc%d", d.name, site) }

func (d *dockerCluster) container(id string) string { return d.name + "-" + id }

// startDocker builds the image, creates the site networks, writes the cluster folder and
// starts one container per node.
func startDocker(t *testing.T) *dockerCluster {
	t.Helper()
	requireDocker(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	d := &dockerCluster{t: t, name: "urne-chaos-" + hex.EncodeToString(suffix), homes: map[string]int{}, detached: map[[2]string]bool{}}
	d.image = d.name + ":test"
	t.Cleanup(d.remove)
	d.buildImage()
	d.createNetworks()
	d.writeCluster()
	for i := range d.nodes {
		d.createContainer(i)
	}
	return d
}

func (d *dockerCluster) buildImage() {
	d.t.Helper()
	ctxDir := d.t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "bin", "urne"), "../../cmd/urne")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		d.t.Fatalf("static build: %v\n%s", err, out)
	}
	d.must("build", "-q", "-f", "../../deploy/Dockerfile", "-t", d.image, ctxDir)
}

// createNetworks creates dc1..dc3 on a 10.N.0.0/16 no network of this engine uses yet.
func (d *dockerCluster) createNetworks() {
	d.t.Helper()
	for attempt := range 20 {
		b := make([]byte, 1)
		_, _ = rand.Read(b)
		d.subnet = fmt.Sprintf("10.%d", 100+int(b[0])%150)
		ok := true
		for site := 1; site <= 3 && ok; site++ {
			out, err := docker("network", "create", "--subnet", fmt.Sprintf("%s.%d.0/24", d.subnet, site), d.network(site))
			if err != nil {
				ok = false
				d.t.Logf("network %s on %s.%d.0/24 (attempt %d): %s", d.network(site), d.subnet, site, attempt+1, bytes.TrimSpace(out))
				for s := 1; s < site; s++ {
					_, _ = docker("network", "rm", d.network(s))
				}
			}
		}
		if ok {
			return
		}
	}
	d.t.Fatal("no free 10.N.0.0/16 for the test networks")
}

// writeCluster writes a 2+2+1 cluster folder whose nodes bind 0.0.0.0 and advertise their
// home address.
func (d *dockerCluster) writeCluster() {
	d.t.Helper()
	d.dir = filepath.Join(d.t.TempDir(), "cluster")
	ids := []string{"dc1-a", "dc1-b", "dc2-a", "dc2-b", "wit-a"}
	dcs := []string{"dc1", "dc1", "dc2", "dc2", "dc3"}
	adv := map[string]string{}
	for i, id := range ids {
		adv[id] = d.ip(siteOf(dcs[i]), i)
	}
	file, err := cluster.Init(cluster.Options{ElectionID: "test-election", Topology: "2+2+1", Out: d.dir,
		Host: "0.0.0.0", BasePort: 7000, Advertise: adv, Profile: node.ProfileLAN})
	if err != nil {
		d.t.Fatal(err)
	}
	d.file, d.nodes = file, file.Nodes
	for i, n := range d.nodes {
		if n.ID != ids[i] {
			d.t.Fatalf("cluster init wrote %s where %s was expected", n.ID, ids[i])
		}
		d.homes[n.ID] = siteOf(n.Datacenter)
	}
}

// createContainer creates node i's container on its home network, attaches it to the two
// other sites' networks, and starts it.
func (d *dockerCluster) createContainer(i int) {
	d.t.Helper()
	n := d.nodes[i]
	home := siteOf(n.Datacenter)
	nodeDir := filepath.Dir(cluster.NodeConfigPath(d.dir, n.ID))
	user := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	d.must("create", "--name", d.container(n.ID), "--user", user, "--network", d.network(home), "--ip", d.homeIP(i),
		"-v", nodeDir+":/etc/urne", d.image)
	for site := 1; site <= 3; site++ {
		if site != home {
			d.must("network", "connect", "--ip", d.ip(site, i), d.network(site), d.container(n.ID))
		}
	}
	d.must("start", d.container(n.ID))
}

// cut disconnects node id from the network of site; join reconnects it at the same address.
func (d *dockerCluster) cut(id string, site int) {
	d.must("network", "disconnect", d.network(site), d.container(id))
	d.detached[[2]string{id, fmt.Sprint(site)}] = true
}

func (d *dockerCluster) join(id string, site int) {
	for i, n := range d.nodes {
		if n.ID == id {
			d.must("network", "connect", "--ip", d.ip(site, i), d.network(site), d.container(id))
		}
	}
	delete(d.detached, [2]string{id, fmt.Sprint(site)})
}

// separate cuts every node of datacenter a off the network of b's site and the other way.
func (d *dockerCluster) separate(a, b string) {
	for _, n := range d.nodes {
		switch n.Datacenter {
		case a:
			d.cut(n.ID, siteOf(b))
		case b:
			d.cut(n.ID, siteOf(a))
		}
	}
}

// healAll reconnects every detached node and starts every stopped container.
func (d *dockerCluster) healAll() {
	for k := range d.detached {
		var site int
		fmt.Sscan(k[1], &site)
		d.join(k[0], site)
	}
	for _, n := range d.nodes {
		d.must("start", d.container(n.ID))
	}
}

func (d *dockerCluster) remove() {
	if d.t.Failed() {
		for _, n := range d.nodes {
			out, _ := docker("logs", "--tail", "30", d.container(n.ID))
			d.t.Logf("==> %s (last lines)\n%s", n.ID, out)
		}
	}
	for _, n := range d.nodes {
		_, _ = docker("rm", "-f", d.container(n.ID))
	}
	for site := 1; site <= 3; site++ {
		_, _ = docker("network", "rm", d.network(site))
	}
	_, _ = docker("rmi", "-f", d.image)
}

// applied reads every node's applied index; a node that does not answer is left out.
func (d *dockerCluster) applied(ctx context.Context, op *client.Client) map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range d.nodes {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if info, err := op.Node(ctx, n.GRPC); err == nil {
			out[n.ID] = info.GetAppliedIndex()
		}
		cancel()
	}
	return out
}

func (d *dockerCluster) client(role string) *client.Client {
	d.t.Helper()
	cfg, _, err := client.LoadClusterDir(d.dir, role)
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c
}

// dockerLoad is the workload voting on a Docker cluster, and its history.
type dockerLoad struct {
	t     *testing.T
	d     *dockerCluster
	ctx   context.Context
	op    *client.Client
	h     *linearize.History
	start time.Time
	stop  func()
}

// vote creates and opens a test election of voters and starts the workload on it.
func (d *dockerCluster) vote(voters, workers int) *dockerLoad {
	t := d.t
	l := &dockerLoad{t: t, d: d, ctx: harness.Context(t, 10*time.Minute), op: d.client("operator"), h: linearize.NewHistory(), start: time.Now()}
	app, org := d.client("app"), d.client("organizer")
	l.leader()
	if _, err := org.CreateElection(l.ctx, "test-election", "Docker"); err != nil {
		t.Fatal(err)
	}
	if _, err := org.ImportVoters(l.ctx, harness.Slice(harness.Voters("v", voters))); err != nil {
		t.Fatal(err)
	}
	if _, err := org.OpenElection(l.ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	w := linearize.Workload{Voters: voters, VoterPrefix: "v", Workers: workers, Endpoints: d.file.Endpoints(), Stop: stop}
	wg.Go(func() { _ = w.Run(context.Background(), app, l.h) })
	var once sync.Once
	l.stop = func() { once.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(l.stop)
	return l
}

func (l *dockerLoad) leader() string {
	var id string
	harness.Poll(l.t, 2*time.Minute, func() error {
		ld, err := l.op.Leader(l.ctx)
		id = ld.ID
		return err
	})
	return id
}

// waitAcked waits for n more acknowledged casts.
func (l *dockerLoad) waitAcked(n int) {
	l.t.Helper()
	from := l.h.Acked()
	harness.Poll(l.t, 2*time.Minute, func() error {
		if got := l.h.Acked() - from; got < n {
			return fmt.Errorf("%d of %d more casts acknowledged", got, n)
		}
		return nil
	})
}

// fault runs fn as a fault in the history.
func (l *dockerLoad) fault(action string, fn func()) {
	l.t.Logf("fault: %s", action)
	_ = linearize.Do(l.h, linearize.KindFault, action, func() error { fn(); return nil })
}

// check stops the load, reads every replica and checks the history under the scenario's name.
func (l *dockerLoad) check(scenario string) {
	t := l.t
	l.stop()
	ops := l.h.Ops()
	replicas, err := linearize.Collect(l.ctx, l.op, l.d.file.Endpoints(), ops)
	if err != nil {
		t.Fatalf("final state: %v", err)
	}
	report := linearize.Check(ops, replicas, linearize.Options{})
	chaos.RecordResult(t, scenario, report, time.Since(l.start))
	if !report.OK() {
		chaos.SaveHistory(t, scenario, ops)
		t.Fatalf("%s: %s", scenario, report)
	}
	t.Logf("%s: %s", scenario, report)
}

// TestDockerPartitionsAndKills runs the workload on containers while dc1 is cut from dc2 (the
// witness reaching both), then the witness is isolated, then the leader is killed.
func TestDockerPartitionsAndKills(t *testing.T) {
	chaos.RecordFailure(t, "docker-partitions-and-kills", time.Now())
	d := startDocker(t)
	l := d.vote(20000, 12)
	// stalled lets the load go on and returns the nodes that applied nothing meanwhile: a
	// cut that took effect leaves the side without the leader behind.
	stalled := func() []string {
		t.Helper()
		before := d.applied(l.ctx, l.op)
		l.waitAcked(200)
		after := d.applied(l.ctx, l.op)
		var out []string
		for id, b := range before {
			if after[id] == b {
				out = append(out, id)
			}
		}
		return out
	}
	l.waitAcked(50)
	l.fault("docker network disconnect: dc1 from dc2, the witness reaching both", func() { d.separate("dc1", "dc2") })
	if s := stalled(); len(s) == 0 {
		t.Fatalf("every node kept applying while dc1 was cut from dc2: the cut did not take")
	}
	time.Sleep(2 * time.Second * chaos.Scale())
	l.fault("reconnect dc1 and dc2", d.healAll)
	l.waitAcked(50)
	l.fault("docker network disconnect: the witness from dc1 and dc2", func() {
		d.separate("dc3", "dc1")
		d.separate("dc3", "dc2")
	})
	if s := stalled(); len(s) != 1 || s[0] != "wit-a" {
		t.Fatalf("nodes %v stalled while the witness was isolated, want wit-a alone", s)
	}
	l.fault("reconnect the witness", d.healAll)
	for range chaos.Scale() {
		leader := l.leader()
		l.fault("docker kill "+leader, func() { d.must("kill", d.container(leader)) })
		l.waitAcked(100)
		l.fault("docker start "+leader, func() { d.must("start", d.container(leader)) })
		l.waitAcked(50)
	}
	l.stop()
	l.fault("heal", d.healAll)
	l.check("docker-partitions-and-kills")
}
