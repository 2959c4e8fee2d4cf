package node

import (
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig(dir string) Config {
	c := DefaultConfig()
	c.ElectionID, c.NodeID, c.Datacenter = "e", "dc1-a", "dc1"
	c.DataDir = filepath.Join(dir, "data")
	c.Bind = Addresses{Raft: "127.0.0.1:1", GRPC: "127.0.0.1:2", Gossip: "127.0.0.1:3"}
	c.TLS = TLSFiles{CA: "ca", Cert: "c", Key: "k"}
	c.GossipKeyFile = "g"
	c.KEK = KEKSource{File: filepath.Join(dir, "kek")}
	return c
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	if err := (func() *Config { c := validConfig(dir); return &c })().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no election", func(c *Config) { c.ElectionID = "" }, "election_id"},
		{"bad role", func(c *Config) { c.Role = "king" }, "role"},
		{"bad profile", func(c *Config) { c.Profile = "moon" }, "profile"},
		{"two KEK sources", func(c *Config) { c.KEK.Env = "X" }, "exactly one"},
		{"no KEK source", func(c *Config) { c.KEK = KEKSource{} }, "exactly one"},
		{"KEK inside data dir", func(c *Config) { c.KEK.File = filepath.Join(c.DataDir, "kek") }, "inside data_dir"},
		{"duplicate bootstrap", func(c *Config) { c.Bootstrap = []Peer{{ID: "a", Raft: "x"}, {ID: "a", Raft: "y"}} }, "twice"},
		{"memory limit too low", func(c *Config) { c.MemoryLimitMiB = 8 }, "memory_limit_mib"},
		{"negative memory limit", func(c *Config) { c.MemoryLimitMiB = -2 }, "memory_limit_mib"},
	}
	for _, tc := range cases {
		c := validConfig(dir)
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadConfigResolvesRelativePathsAndRejectsUnknownFields(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.json")
	body := `{"election_id":"e","node_id":"n","datacenter":"dc1","data_dir":"data",
	  "bind":{"raft":"127.0.0.1:1","grpc":"127.0.0.1:2","gossip":"127.0.0.1:3"},
	  "tls":{"ca":"ca.crt","cert":"node.crt","key":"node.key"},"gossip_key_file":"gossip.key","kek":{"file":"kek"}}`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != filepath.Join(dir, "data") || cfg.KEK.File != filepath.Join(dir, "kek") || cfg.Profile != ProfileLAN {
		t.Fatalf("paths or defaults not resolved: %+v", cfg)
	}
	if err := os.WriteFile(path, []byte(`{"election_id":"e","nodeid":"typo"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "nodeid") {
		t.Fatalf("unknown field accepted: %v", err)
	}
}

func TestProfilesScaleTimeouts(t *testing.T) {
	lh, le, ll, _ := ProfileLAN.raftTimeouts()
	wh, we, wl, _ := ProfileWAN.raftTimeouts()
	if wh != 3*lh || we != 3*le || wl != 3*ll {
		t.Fatalf("wan timeouts %v %v %v are not three times lan's %v %v %v", wh, we, wl, lh, le, ll)
	}
	if ll >= lh {
		t.Fatalf("leader lease %v must be shorter than the heartbeat timeout %v", ll, lh)
	}
}

func TestAuditConfig(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.TimestampInterval != Duration(10*time.Minute) || cfg.IntegrityInterval != Duration(time.Minute) {
		t.Fatalf("defaults %+v", cfg.AuditConfig)
	}
	var a AuditConfig
	if err := json.Unmarshal([]byte(`{"timestamp_interval":"90s","smtp":{"server":"mail:25","from":"urne@example.org","to":["b@example.org"]}}`), &a); err != nil {
		t.Fatal(err)
	}
	if a.TimestampInterval != Duration(90*time.Second) || a.SMTP.Server != "mail:25" {
		t.Fatalf("parsed %+v", a)
	}
	bad := defaultAuditConfig()
	bad.SMTP = AlertMailConfig{Server: "mail:25", From: "not an address"}
	bad.TimestampAuthorities = []TimestampAuthority{{Name: "a"}}
	bad.TimestampRetry = 0
	if errs := bad.validate(); len(errs) != 4 {
		t.Fatalf("want 4 problems (from, to, authority, retry), got %v", errs)
	}
}

func TestTrailingLogsReachRaft(t *testing.T) {
	for _, tc := range []struct{ set, want uint64 }{{0, defaultTrailingLogs}, {64, 64}} {
		n := &Node{cfg: validConfig(t.TempDir()), log: slog.New(slog.DiscardHandler)}
		n.cfg.TrailingLogs = tc.set
		if got := n.raftConfig().TrailingLogs; got != tc.want {
			t.Errorf("trailing_logs %d: raft keeps %d entries, want %d", tc.set, got, tc.want)
		}
	}
}

func TestSnapshotIntervalReachesRaft(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want time.Duration
		bad  bool
	}{{"", defaultSnapshotInterval, false}, {"2s", 2 * time.Second, false}, {"soon", 0, true}, {"1ms", 0, true}} {
		n := &Node{cfg: validConfig(t.TempDir()), log: slog.New(slog.DiscardHandler)}
		n.cfg.SnapshotInterval = tc.set
		if err := n.cfg.Validate(); (err != nil) != tc.bad {
			t.Errorf("snapshot_interval %q: validate %v", tc.set, err)
			continue
		}
		if got := n.raftConfig().SnapshotInterval; !tc.bad && got != tc.want {
			t.Errorf("snapshot_interval %q: raft checks every %s, want %s", tc.set, got, tc.want)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		}
	}
	cases := []struct {
		mib    int64
		gomem  string
		want   int64
		wantOK bool
	}{
		{0, "", defaultMemoryLimitMiB << 20, true},
		{0, "2GiB", 0, false}, // the environment's limit stands
		{512, "2GiB", 512 << 20, true},
		{-1, "", math.MaxInt64, true},
	}
	for _, tc := range cases {
		c := Config{MemoryLimitMiB: tc.mib}
		got, ok := c.memoryLimit(env(tc.gomem))
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("memory_limit_mib %d, GOMEMLIMIT %q: got %d, %v; want %d, %v", tc.mib, tc.gomem, got, ok, tc.want, tc.wantOK)
		}
	}
}
