package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONOutputIsOneDocument(t *testing.T) {
	dir, _ := initFolder(t, "--topology", "2")
	tests := []struct {
		name string
		args []string
		code int
		key  string // a key the document must hold
	}{
		{"version", []string{"version"}, 0, "version"},
		{"status of a stopped cluster", []string{"status", "--cluster", dir}, 0, "nodes"},
		{"dev ps", []string{"dev", "ps", "--dir", dir}, 0, "nodes"},
		{"dev down of a stopped cluster", []string{"dev", "down", "--dir", dir}, 0, "nodes"},
		{"missing flag", []string{"cluster", "init", "--election", "e"}, 1, "error"},
		{"unknown command", []string{"no-such-command"}, 1, "error"},
		{"no cluster given", []string{"status"}, 1, "error"},
		{"both cluster and endpoints", []string{"status", "--cluster", dir, "--endpoints", "a:1"}, 1, "error"},
		{"endpoints without TLS files", []string{"status", "--endpoints", "a:1"}, 1, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, append(tt.args, "-o", "json")...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, stderr)
			}
			var doc map[string]json.RawMessage
			decodeOne(t, stdout, &doc)
			if _, ok := doc[tt.key]; !ok {
				t.Fatalf("document lacks %q: %s", tt.key, stdout)
			}
			if tt.code != 0 && !strings.HasPrefix(stderr, "urne: ") {
				t.Fatalf("error not reported on stderr: %q", stderr)
			}
		})
	}
}

func TestStatusShowsUnreachableNodes(t *testing.T) {
	dir, _ := initFolder(t, "--topology", "2")
	stdout, _, code := runCLI(t, "status", "--cluster", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var r statusReport
	decodeOne(t, stdout, &r)
	if len(r.Nodes) != 2 || r.Reachable != 0 || r.Leader != "" {
		t.Fatalf("report: %+v", r)
	}
	for _, n := range r.Nodes {
		if n.Reachable || n.Error == "" || n.ID == "" {
			t.Fatalf("node %+v: want unreachable with an error", n)
		}
	}
	stdout, _, _ = runCLI(t, "status", "--cluster", dir)
	if strings.Count(stdout, "unreachable") != 2 || !strings.Contains(stdout, "leader: none known") {
		t.Fatalf("text status:\n%s", stdout)
	}
}

func TestUnknownOutputFormat(t *testing.T) {
	_, stderr, code := runCLI(t, "version", "-o", "yaml")
	if code != 1 || !strings.Contains(stderr, `"yaml"`) {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}

func TestEmitTwiceIsRefused(t *testing.T) {
	a := newApp(&strings.Builder{}, &strings.Builder{})
	a.format = formatJSON
	if err := a.emit(1, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.emit(2, nil); err == nil {
		t.Fatal("a second result was printed")
	}
}
