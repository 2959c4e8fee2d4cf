package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Layout of the cluster folder written by `urne cluster init` and `urne dev up`.
const (
	ClusterFileName = "cluster.json"
	CAFile          = "ca/ca.crt"
	ClientsDir      = "clients"
)

// ClusterFile is DIR/cluster.json: the election and the addresses of its nodes.
type ClusterFile struct {
	ElectionID string        `json:"election_id"`
	Topology   string        `json:"topology"`
	Nodes      []ClusterNode `json:"nodes"`
}

// ClusterNode is one node of a ClusterFile. Config is the path of the node's config file,
// relative to the cluster folder.
type ClusterNode struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	Role       string `json:"role"`
	Raft       string `json:"raft"`
	GRPC       string `json:"grpc"`
	Gossip     string `json:"gossip"`
	Metrics    string `json:"metrics"`
	Config     string `json:"config"`
}

// Endpoints returns the gRPC addresses of the nodes, in file order.
func (f *ClusterFile) Endpoints() []string {
	eps := make([]string, 0, len(f.Nodes))
	for _, n := range f.Nodes {
		eps = append(eps, n.GRPC)
	}
	return eps
}

// Node returns the node with the given id.
func (f *ClusterFile) Node(id string) (ClusterNode, bool) {
	for _, n := range f.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return ClusterNode{}, false
}

// Validate checks what a client needs: an election id and nodes with distinct ids and a gRPC address.
func (f *ClusterFile) Validate() error {
	if f.ElectionID == "" {
		return errors.New("cluster file has no election_id")
	}
	if len(f.Nodes) == 0 {
		return errors.New("cluster file lists no nodes")
	}
	seen := make(map[string]bool, len(f.Nodes))
	for i, n := range f.Nodes {
		if n.ID == "" || n.GRPC == "" {
			return fmt.Errorf("cluster file: node %d needs an id and a grpc address", i)
		}
		if seen[n.ID] {
			return fmt.Errorf("cluster file: node id %q appears twice", n.ID)
		}
		seen[n.ID] = true
	}
	return nil
}

// ParseClusterFile decodes and validates the JSON of a cluster file.
func ParseClusterFile(data []byte) (*ClusterFile, error) {
	var f ClusterFile
	// Unknown fields are ignored so that an older client reads a newer file.
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decoding cluster file: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// ReadClusterFile reads and validates the cluster file at path.
func ReadClusterFile(path string) (*ClusterFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading cluster file: %w", err)
	}
	f, err := ParseClusterFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// WriteClusterFile writes f to path as indented JSON, through a temporary file and a rename
// so a reader never sees half a file.
func WriteClusterFile(path string, f *ClusterFile) error {
	if err := f.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding cluster file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cluster-*.json")
	if err != nil {
		return fmt.Errorf("writing cluster file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing cluster file %s: %w", tmp.Name(), err)
	}
	if err := finishFile(tmp); err != nil {
		return fmt.Errorf("writing cluster file %s: %w", tmp.Name(), err)
	}
	return os.Rename(tmp.Name(), path)
}

// finishFile makes a written file durable and readable by everyone, then closes it.
func finishFile(f *os.File) error {
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadClusterDir reads a cluster folder: DIR/cluster.json, the election CA DIR/ca/ca.crt and
// the client credentials DIR/clients/<role>.crt and .key. It returns a Config with the
// defaults, every node's gRPC address and a TLS configuration that accepts only nodes of this
// election.
func LoadClusterDir(dir, role string) (Config, *ClusterFile, error) {
	f, err := ReadClusterFile(filepath.Join(dir, ClusterFileName))
	if err != nil {
		return Config{}, nil, err
	}
	if role == "" || strings.ContainsAny(role, `/\`) || strings.HasPrefix(role, ".") {
		return Config{}, nil, fmt.Errorf("client role %q is not a role name (operator, organizer, app)", role)
	}
	certFile := filepath.Join(dir, ClientsDir, role+".crt")
	if _, err := os.Stat(certFile); err != nil {
		return Config{}, nil, fmt.Errorf("no credentials for client role %q in %s (found: %s): %w",
			role, filepath.Join(dir, ClientsDir), strings.Join(clientRoles(dir), ", "), err)
	}
	tlsCfg, err := LoadTLSFiles(filepath.Join(dir, CAFile), certFile, filepath.Join(dir, ClientsDir, role+".key"), f.ElectionID)
	if err != nil {
		return Config{}, nil, fmt.Errorf("cluster folder %s: %w", dir, err)
	}
	cfg := DefaultConfig()
	cfg.Endpoints = f.Endpoints()
	cfg.TLS = tlsCfg
	return cfg, f, nil
}

// clientRoles lists the roles that have a certificate in the cluster folder.
func clientRoles(dir string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, ClientsDir, "*.crt"))
	roles := []string{}
	for _, m := range matches {
		roles = append(roles, strings.TrimSuffix(filepath.Base(m), ".crt"))
	}
	sort.Strings(roles)
	if len(roles) == 0 {
		return []string{"none"}
	}
	return roles
}
