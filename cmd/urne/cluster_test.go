package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/keyring"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/pki"
)

// folderRoles are the client certificates a cluster folder holds.
var folderRoles = []string{roleOperator, roleOrganizer, roleApp}

// runCLI runs one command line in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// decodeOne decodes stdout as exactly one JSON document into v.
func decodeOne(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document (next: %s, err %v)", extra, err)
	}
}

func initFolder(t *testing.T, args ...string) (string, clusterReport) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cluster")
	args = append([]string{"cluster", "init", "--election", "e2026", "--out", dir, "-o", "json"}, args...)
	stdout, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("cluster init exited %d: %s", code, stderr)
	}
	var r clusterReport
	decodeOne(t, stdout, &r)
	return dir, r
}

func TestClusterInitFileModes(t *testing.T) {
	dir, _ := initFolder(t)
	want := map[string]fs.FileMode{
		"cluster.json": 0o644, "ca/ca.crt": 0o644, "ca/ca.key": 0o600, "backup/backup.key": 0o600,
		"keys/envelope.pub.pem": 0o644, "keys/receipt.pub.pem": 0o644,
	}
	for _, role := range folderRoles {
		want["clients/"+role+".crt"] = 0o644
		want["clients/"+role+".key"] = 0o600
	}
	for _, id := range []string{"dc1-a", "dc1-b", "dc2-a", "dc2-b", "wit-a"} {
		nd := "nodes/" + id + "/"
		for name, mode := range map[string]fs.FileMode{"node.json": 0o644, "ca.crt": 0o644, "node.crt": 0o644,
			"node.key": 0o600, "gossip.key": 0o600, "kek": 0o600, "envelope.key": 0o600, "receipt.key": 0o600} {
			want[nd+name] = mode
		}
	}
	got := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		rel, _ := filepath.Rel(dir, path)
		got[filepath.ToSlash(rel)] = info.Mode().Perm()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range want {
		if got[path] != mode {
			t.Errorf("%s: mode %v, want %v", path, got[path], mode)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("unexpected file %s", path)
		}
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("cluster folder mode: %v, %v; want 0700", info.Mode().Perm(), err)
	}
}

func TestClusterInitNodeConfigsLoad(t *testing.T) {
	dir, report := initFolder(t)
	file, err := client.ReadClusterFile(filepath.Join(dir, client.ClusterFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(file.Endpoints(), endpointsOf(report.Nodes)) {
		t.Fatalf("cluster.json endpoints %v differ from the printed ones %v", file.Endpoints(), endpointsOf(report.Nodes))
	}
	gossip := map[string]bool{}
	for _, n := range file.Nodes {
		cfg, err := node.LoadConfig(filepath.Join(dir, n.Config))
		if err != nil {
			t.Fatalf("node %s: %v", n.ID, err)
		}
		checkNodeConfig(t, cfg, n, file)
		checkNodeSecrets(t, cfg, n.ID)
		key, err := pki.ReadGossipKey(cfg.GossipKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		gossip[string(key)] = true
	}
	if len(gossip) != 1 {
		t.Fatalf("nodes hold %d different gossip keys, want one shared key", len(gossip))
	}
	for _, role := range folderRoles {
		if _, _, err := client.LoadClusterDir(dir, role); err != nil {
			t.Errorf("client role %s: %v", role, err)
		}
	}
}

func endpointsOf(nodes []client.ClusterNode) []string {
	var eps []string
	for _, n := range nodes {
		eps = append(eps, n.GRPC)
	}
	return eps
}

func checkNodeConfig(t *testing.T, cfg node.Config, n client.ClusterNode, file *client.ClusterFile) {
	t.Helper()
	if cfg.ElectionID != "e2026" || cfg.NodeID != n.ID || cfg.Datacenter != n.Datacenter || string(cfg.Role) != n.Role {
		t.Errorf("node %s: config says %s/%s/%s/%s", n.ID, cfg.ElectionID, cfg.NodeID, cfg.Datacenter, cfg.Role)
	}
	if cfg.Bind.GRPC != n.GRPC || cfg.Bind.Raft != n.Raft || cfg.Bind.Gossip != n.Gossip || cfg.Bind.Metrics != n.Metrics {
		t.Errorf("node %s: bind %+v differs from cluster.json %+v", n.ID, cfg.Bind, n)
	}
	if len(cfg.Bootstrap) != len(file.Nodes) || len(cfg.Join) != len(file.Nodes) {
		t.Errorf("node %s: bootstrap %d and join %d, want %d each", n.ID, len(cfg.Bootstrap), len(cfg.Join), len(file.Nodes))
	}
	for i, p := range cfg.Bootstrap {
		want := file.Nodes[i]
		if p.ID != want.ID || p.Raft != want.Raft || p.GRPC != want.GRPC || string(p.Role) != want.Role || cfg.Join[i] != want.Gossip {
			t.Errorf("node %s: bootstrap peer %d is %+v, want %+v", n.ID, i, p, want)
		}
	}
	if cfg.Profile != node.ProfileLAN || filepath.Base(cfg.DataDir) != "data" {
		t.Errorf("node %s: profile %s, data dir %s", n.ID, cfg.Profile, cfg.DataDir)
	}
}

// checkNodeSecrets opens the KEK and checks that the certificate is this node's, for every
// name the node is dialled at.
func checkNodeSecrets(t *testing.T, cfg node.Config, id string) {
	t.Helper()
	text, err := os.ReadFile(cfg.KEK.File)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keyring.ParseKEK(text)
	if err != nil {
		t.Fatalf("node %s: kek: %v", id, err)
	}
	if want := "kek-" + id + "-1"; kek.ID() != want {
		t.Errorf("node %s: kek id %q, want %q", id, kek.ID(), want)
	}
	caPEM, certPEM, keyPEM, err := pki.LoadFiles(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.ServerConfig(caPEM, certPEM, keyPEM, cfg.ElectionID); err != nil {
		t.Fatalf("node %s: server TLS: %v", id, err)
	}
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := pki.IdentityOf(cert)
	if err != nil || ident.Name != id || ident.Kind != pki.KindNode {
		t.Errorf("node %s: certificate identity %v, %v", id, ident, err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", id} {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("node %s: certificate does not cover %s: %v", id, host, err)
		}
	}
}

func TestClusterInitTopologies(t *testing.T) {
	tests := []struct {
		topology string
		want     string // id/datacenter/role, in order
	}{
		{"2+2+1", "dc1-a/dc1/voter dc1-b/dc1/voter dc2-a/dc2/voter dc2-b/dc2/voter wit-a/dc3/witness"},
		{"2+2", "dc1-a/dc1/voter dc1-b/dc1/voter dc2-a/dc2/voter dc2-b/dc2/voter"},
		{"3+2", "dc1-a/dc1/voter dc1-b/dc1/voter dc1-c/dc1/voter dc2-a/dc2/voter dc2-b/dc2/voter"},
		{"3", "dc1-a/dc1/voter dc1-b/dc1/voter dc1-c/dc1/voter"},
		{"1", "dc1-a/dc1/voter"},
	}
	for _, tt := range tests {
		t.Run(tt.topology, func(t *testing.T) {
			dir, r := initFolder(t, "--topology", tt.topology)
			var got []string
			for _, n := range r.Nodes {
				got = append(got, n.ID+"/"+n.Datacenter+"/"+n.Role)
				cfg, err := node.LoadConfig(filepath.Join(dir, n.Config))
				if err != nil {
					t.Fatal(err)
				}
				if cfg.NodeID+"/"+cfg.Datacenter+"/"+string(cfg.Role) != got[len(got)-1] {
					t.Fatalf("node.json of %s says %s/%s/%s", n.ID, cfg.NodeID, cfg.Datacenter, cfg.Role)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("got %s, want %s", strings.Join(got, " "), tt.want)
			}
		})
	}
	for _, bad := range []string{"0", "2+0", "a", "2+2+1+1", "-1", "16", "8+8"} {
		out := filepath.Join(t.TempDir(), "c")
		if _, _, code := runCLI(t, "cluster", "init", "--election", "e", "--out", out, "--topology", bad); code != 1 {
			t.Errorf("topology %q: exit %d, want 1", bad, code)
		}
	}
}

func TestClusterInitTopologyReachesFiles(t *testing.T) {
	dir, r := initFolder(t, "--topology", "3+2", "--profile", "wan")
	if len(r.Nodes) != 5 || r.Topology != "3+2" {
		t.Fatalf("report: %+v", r)
	}
	cfg, err := node.LoadConfig(filepath.Join(dir, "nodes", "dc1-c", "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datacenter != "dc1" || cfg.Role != node.RoleVoter || cfg.Profile != node.ProfileWAN {
		t.Fatalf("dc1-c: %s %s %s", cfg.Datacenter, cfg.Role, cfg.Profile)
	}
}

func TestClusterInitBasePort(t *testing.T) {
	_, r := initFolder(t, "--base-port", "21000", "--topology", "2")
	for i, n := range r.Nodes {
		want := []string{n.Raft, n.GRPC, n.Gossip, n.Metrics}
		for j, addr := range want {
			if exp := "127.0.0.1:" + strconv.Itoa(21000+10*i+j); addr != exp {
				t.Errorf("node %s port %d: %s, want %s", n.ID, j, addr, exp)
			}
		}
	}
	_, stderr, code := runCLI(t, "cluster", "init", "--election", "e", "--out", filepath.Join(t.TempDir(), "c"), "--base-port", "65530", "--topology", "2")
	if code != 1 || !strings.Contains(stderr, "--base-port 65530") {
		t.Fatalf("out of range base port: exit %d, %s", code, stderr)
	}
}

func TestClusterInitFreePortsAreDistinct(t *testing.T) {
	_, r := initFolder(t)
	seen := map[string]bool{}
	for _, n := range r.Nodes {
		for _, addr := range []string{n.Raft, n.GRPC, n.Gossip, n.Metrics} {
			if seen[addr] {
				t.Fatalf("address %s handed out twice", addr)
			}
			seen[addr] = true
		}
	}
}

func TestClusterInitAdvertiseHosts(t *testing.T) {
	_, stderr, code := runCLI(t, "cluster", "init", "--election", "e", "--out", filepath.Join(t.TempDir(), "c"),
		"--topology", "2", "--host", "0.0.0.0", "--advertise-hosts", "dc1-a=node-a.example")
	if code != 1 || !strings.Contains(stderr, "dc1-b") {
		t.Fatalf("0.0.0.0 without every advertised host: exit %d, %s", code, stderr)
	}
	dir, r := initFolder(t, "--topology", "2", "--host", "0.0.0.0", "--base-port", "22000",
		"--advertise-hosts", "dc1-a=node-a.example,dc1-b=10.1.2.3")
	if r.Nodes[0].GRPC != "node-a.example:22001" || r.Nodes[1].Raft != "10.1.2.3:22010" {
		t.Fatalf("cluster.json does not use advertised hosts: %+v", r.Nodes)
	}
	cfg, err := node.LoadConfig(filepath.Join(dir, "nodes", "dc1-a", "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bind.GRPC != "0.0.0.0:22001" || cfg.Advertise.GRPC != "node-a.example:22001" || cfg.Bootstrap[1].Raft != "10.1.2.3:22010" {
		t.Fatalf("bind %+v advertise %+v bootstrap %+v", cfg.Bind, cfg.Advertise, cfg.Bootstrap)
	}
	certPEM, err := os.ReadFile(cfg.TLS.Cert)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("node-a.example"); err != nil {
		t.Fatalf("certificate misses the advertised host: %v", err)
	}
	_, stderr, code = runCLI(t, "cluster", "init", "--election", "e", "--out", filepath.Join(t.TempDir(), "c"),
		"--topology", "2", "--advertise-hosts", "dc9-z=h")
	if code != 1 || !strings.Contains(stderr, `"dc9-z"`) {
		t.Fatalf("unknown node in --advertise-hosts: exit %d, %s", code, stderr)
	}
}

func TestClusterInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "keep")
	if err := os.WriteFile(marker, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "cluster", "init", "--election", "e", "--out", dir)
	if code != 1 || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("the folder was changed: %v", entries)
	}
	siblings, _ := os.ReadDir(filepath.Dir(dir))
	for _, s := range siblings {
		if strings.HasPrefix(s.Name(), ".urne-init-") {
			t.Fatalf("temporary folder %s left behind", s.Name())
		}
	}
	empty := t.TempDir()
	if _, stderr, code := runCLI(t, "cluster", "init", "--election", "e", "--out", empty, "--topology", "1"); code != 0 {
		t.Fatalf("an existing empty folder is fine, got exit %d: %s", code, stderr)
	}
}

func TestClusterInitRejectsBadInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "c")
	tests := map[string][]string{
		"bad election id": {"--election", "bad/id"},
		"bad topology":    {"--election", "e", "--topology", "2+x"},
		"bad profile":     {"--election", "e", "--profile", "moon"},
		"bad advertise":   {"--election", "e", "--advertise-hosts", "dc1-a"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			_, stderr, code := runCLI(t, append([]string{"cluster", "init", "--out", out}, args...)...)
			if code != 1 || stderr == "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a refused init created the folder")
			}
		})
	}
}
