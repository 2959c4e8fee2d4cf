package client

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urne-vote/urne/client/internal/fakeurne"
)

// writeClusterDir writes the cluster folder of fc with credentials for the app role.
func writeClusterDir(t *testing.T, fc *fakeurne.Cluster) string {
	t.Helper()
	dir := t.TempDir()
	f := &ClusterFile{ElectionID: fc.ElectionID, Topology: "2+2+1"}
	for _, n := range fc.Nodes {
		f.Nodes = append(f.Nodes, ClusterNode{ID: n.ID, Datacenter: "dc1", Role: "voter", GRPC: n.Addr, Config: "nodes/" + n.ID + "/node.json"})
	}
	certPEM, keyPEM, err := fc.CA.ClientPEM("app")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{CAFile: fc.CA.CertPEM(), "clients/app.crt": certPEM, "clients/app.key": keyPEM}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteClusterFile(filepath.Join(dir, ClusterFileName), f); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadClusterDir(t *testing.T) {
	fc := startCluster(t, 3)
	dir := writeClusterDir(t, fc)

	cfg, f, err := LoadClusterDir(dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	if f.ElectionID != testElection || !reflect.DeepEqual(cfg.Endpoints, fc.Endpoints()) || cfg.MaxAttempts != DefaultMaxAttempts {
		t.Fatalf("config %+v, file %+v", cfg, f)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, err := c.GetElection(context.Background()); err != nil || st.GetElectionId() != testElection {
		t.Fatalf("GetElection through the loaded config = %v, %v", st, err)
	}
}

func TestLoadClusterDirErrors(t *testing.T) {
	fc := startCluster(t, 1)
	dir := writeClusterDir(t, fc)
	tests := []struct {
		name, dir, role, want string
	}{
		{"unknown role", dir, "bureau", "found: app"},
		{"role with a path", dir, "../app", "not a role name"},
		{"no folder", filepath.Join(dir, "missing"), "app", "reading cluster file"},
	}
	for _, tt := range tests {
		if _, _, err := LoadClusterDir(tt.dir, tt.role); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestClusterFileRoundTrip(t *testing.T) {
	f := &ClusterFile{ElectionID: "e1", Topology: "2+2+1", Nodes: []ClusterNode{
		{ID: "dc1-a", Datacenter: "dc1", Role: "voter", Raft: "10.0.0.1:7000", GRPC: "10.0.0.1:7001", Gossip: "10.0.0.1:7002", Metrics: "10.0.0.1:9100", Config: "nodes/dc1-a/node.json"},
	}}
	path := filepath.Join(t.TempDir(), ClusterFileName)
	if err := WriteClusterFile(path, f); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, key := range []string{`"election_id"`, `"topology"`, `"datacenter"`, `"raft"`, `"grpc"`, `"gossip"`, `"metrics"`, `"config"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("cluster.json lacks %s:\n%s", key, data)
		}
	}
	got, err := ReadClusterFile(path)
	if err != nil || !reflect.DeepEqual(got, f) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, f)
	}
	if n, ok := got.Node("dc1-a"); !ok || n.GRPC != "10.0.0.1:7001" {
		t.Errorf("Node(dc1-a) = %+v, %v", n, ok)
	}
}

func TestParseClusterFileRejects(t *testing.T) {
	tests := map[string]string{
		"not json":      `{`,
		"no election":   `{"nodes":[{"id":"a","grpc":"1.2.3.4:1"}]}`,
		"no nodes":      `{"election_id":"e1"}`,
		"no grpc":       `{"election_id":"e1","nodes":[{"id":"a"}]}`,
		"duplicate ids": `{"election_id":"e1","nodes":[{"id":"a","grpc":"h:1"},{"id":"a","grpc":"h:2"}]}`,
	}
	for name, data := range tests {
		if _, err := ParseClusterFile([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseClusterFile(f *testing.F) {
	f.Add([]byte(`{"election_id":"e1","topology":"2+2+1","nodes":[{"id":"a","grpc":"127.0.0.1:7001"}]}`))
	f.Add([]byte(`{"election_id":"e1","nodes":[{"id":"a","grpc":"h:1"},{"id":"a","grpc":"h:2"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := ParseClusterFile(data)
		if err != nil {
			return
		}
		if cf.Validate() != nil || len(cf.Endpoints()) != len(cf.Nodes) {
			t.Fatalf("accepted an invalid cluster file: %+v", cf)
		}
	})
}
