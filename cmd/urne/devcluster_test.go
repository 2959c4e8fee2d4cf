//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeNode writes a script that stands in for `urne server`: it runs until killed and, with
// stubborn, ignores SIGTERM.
func fakeNode(t *testing.T, stubborn bool) string {
	t.Helper()
	body := "#!/bin/sh\n"
	if stubborn {
		body += "trap '' TERM\n"
	}
	body += "echo started \"$@\"\nsleep 60 &\nwait\n"
	path := filepath.Join(t.TempDir(), "fake-urne")
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func fakeCluster(t *testing.T, stubborn bool) *devCluster {
	t.Helper()
	dir, _ := initFolder(t, "--topology", "2")
	d, err := openDevCluster(dir, fakeNode(t, stubborn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range d.ids() {
			_, _ = d.kill(id)
		}
	})
	return d
}

func pidFile(t *testing.T, d *devCluster, id string) string {
	t.Helper()
	n, err := d.node(id)
	if err != nil {
		t.Fatal(err)
	}
	return d.nodeFile(n, nodePIDFile)
}

func TestDevStartWritesPIDAndLog(t *testing.T) {
	d := fakeCluster(t, false)
	pid, started, err := d.start("dc1-a")
	if err != nil || !started || pid == 0 {
		t.Fatalf("start: pid %d, started %v, %v", pid, started, err)
	}
	raw, err := os.ReadFile(pidFile(t, d, "dc1-a"))
	if err != nil || strings.TrimSpace(string(raw)) != strconv.Itoa(pid) {
		t.Fatalf("pid file %q (%v), want %d", raw, err, pid)
	}
	again, started, err := d.start("dc1-a")
	if err != nil || started || again != pid {
		t.Fatalf("second start: pid %d started %v err %v; want the running pid %d", again, started, err, pid)
	}
	if d.pid("dc1-b") != 0 {
		t.Fatal("dc1-b was never started but has a pid")
	}
	// A second handle on the folder, like another `urne dev` invocation, finds it through the
	// pid file once the child has exec'd (before that its command line is still the parent's).
	waitStarted(t, d, "dc1-a")
	other, err := openDevCluster(d.dir, d.exe)
	if err != nil {
		t.Fatal(err)
	}
	if other.pid("dc1-a") != pid {
		t.Fatalf("another invocation sees pid %d, want %d", other.pid("dc1-a"), pid)
	}
}

// waitStarted waits until the fake node has logged its command line.
func waitStarted(t *testing.T, d *devCluster, id string) {
	t.Helper()
	n, _ := d.node(id)
	waitFor(t, func() bool {
		log, _ := os.ReadFile(d.nodeFile(n, nodeLogFile))
		return strings.Contains(string(log), "started server --config "+d.configPath(n))
	})
}

func TestDevKill(t *testing.T) {
	d := fakeCluster(t, true)
	pid, _, err := d.start("dc1-b")
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, d, "dc1-b")
	killed, err := d.kill("dc1-b")
	if err != nil || killed != pid {
		t.Fatalf("kill: %d, %v; want %d", killed, err, pid)
	}
	if d.pid("dc1-b") != 0 || processAlive(pid) {
		t.Fatal("the node still runs after kill")
	}
	if _, err := os.Stat(pidFile(t, d, "dc1-b")); !os.IsNotExist(err) {
		t.Fatalf("pid file left after kill: %v", err)
	}
	if killed, err := d.kill("dc1-b"); err != nil || killed != 0 {
		t.Fatalf("killing a stopped node: %d, %v", killed, err)
	}
}

func TestDevStopAllEscalates(t *testing.T) {
	polite := fakeCluster(t, false)
	if _, _, err := polite.start("dc1-a"); err != nil {
		t.Fatal(err)
	}
	results, err := polite.stopAll(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Result != "stopped" || results[1].Result != "not running" {
		t.Fatalf("results %+v", results)
	}
	stubborn := fakeCluster(t, true)
	pid, _, err := stubborn.start("dc1-a")
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, stubborn, "dc1-a") // the trap is set once the script has printed
	results, err = stubborn.stopAll(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Result != "killed" || processAlive(pid) {
		t.Fatalf("a node ignoring SIGTERM: %+v, alive %v", results[0], processAlive(pid))
	}
	if _, err := os.Stat(pidFile(t, stubborn, "dc1-a")); !os.IsNotExist(err) {
		t.Fatalf("pid file left after stop: %v", err)
	}
}

func TestDevIgnoresStalePIDFiles(t *testing.T) {
	d := fakeCluster(t, false)
	// A pid the system gave to another process: this test binary does not run the node's config.
	for _, content := range []string{strconv.Itoa(os.Getpid()), "999999999", "garbage"} {
		if err := os.WriteFile(pidFile(t, d, "dc1-a"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if pid := d.pid("dc1-a"); pid != 0 {
			t.Fatalf("pid file %q: node reported running as %d", content, pid)
		}
	}
	pid, started, err := d.start("dc1-a")
	if err != nil || !started || pid == os.Getpid() {
		t.Fatalf("start over a stale pid file: %d %v %v", pid, started, err)
	}
}

func TestDevUnknownNode(t *testing.T) {
	d := fakeCluster(t, false)
	if _, _, err := d.start("dc9-z"); err == nil || !strings.Contains(err.Error(), "dc1-a, dc1-b") {
		t.Fatalf("unknown node: %v", err)
	}
	_, stderr, code := runCLI(t, "dev", "kill", "--dir", d.dir, "--node", "dc9-z")
	if code != 1 || !strings.Contains(stderr, `"dc9-z"`) {
		t.Fatalf("exit %d, %s", code, stderr)
	}
}

func TestDevUpFailsFastWhenANodeDies(t *testing.T) {
	dir, _ := initFolder(t, "--topology", "1")
	broken := filepath.Join(t.TempDir(), "broken-urne")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho cannot open keyring >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr, code := runCLI(t, "dev", "up", "--dir", dir, "--urne-binary", broken, "--wait", "30s")
	if code != 1 || !strings.Contains(stderr, "cannot open keyring") || !strings.Contains(stderr, "dc1-a stopped while starting") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("dev up took %v to notice a dead node", time.Since(start))
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(pollInterval)
	}
}
