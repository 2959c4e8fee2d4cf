package chaos_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/test/chaos"
)

// composeFile is the file operators run; the test runs it unmodified, naming its project,
// networks, image and cluster folder through the variables the file reads.
const composeFile = "../../deploy/compose/docker-compose.yml"

// composeCommand finds Docker Compose: the plugin (`docker compose`) or the standalone
// `docker-compose`; nil when neither is installed.
func composeCommand() []string {
	if out, err := docker("compose", "version"); err == nil && bytes.Contains(out, []byte("version")) {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	return nil
}

// TestDockerComposeFile brings the 2+2+1 cluster of deploy/compose up with Docker Compose,
// runs the workload through a kill and a restart of the leader's service, takes it down,
// and checks the history.
func TestDockerComposeFile(t *testing.T) {
	requireDocker(t)
	compose := composeCommand()
	if compose == nil {
		t.Skip("compose scenario skipped: neither `docker compose` nor `docker-compose` is installed")
	}
	chaos.RecordFailure(t, "docker-compose-file", time.Now())
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	d := &dockerCluster{t: t, name: "urne-compose-" + hex.EncodeToString(suffix), homes: map[string]int{}, detached: map[[2]string]bool{}}
	d.image = d.name + ":test"
	t.Cleanup(d.remove)
	d.buildImage()
	// Compose creates the networks itself: find a free 10.N.0.0/16 by creating them once,
	// then hand the prefix over.
	d.createNetworks()
	for site := 1; site <= 3; site++ {
		d.must("network", "rm", d.network(site))
	}
	d.writeCluster()
	env := append(os.Environ(), "URNE_NAME="+d.name, "URNE_NET="+d.subnet, "URNE_CLUSTER="+d.dir,
		"URNE_IMAGE="+d.image, fmt.Sprintf("URNE_UID=%d", os.Getuid()), fmt.Sprintf("URNE_GID=%d", os.Getgid()))
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		full := append(append(compose[1:], "-p", d.name, "-f", composeFile), args...)
		cmd := exec.CommandContext(ctx, compose[0], full...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", strings.Join(compose, " "), strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		cmd := exec.Command(compose[0], append(compose[1:], "-p", d.name, "-f", composeFile, "down", "--timeout", "5")...)
		cmd.Env = env
		_ = cmd.Run()
	})
	run("up", "-d")

	l := d.vote(5000, 8)
	l.waitAcked(50)
	leader := l.leader()
	l.fault("compose kill "+leader, func() { run("kill", leader) })
	l.waitAcked(100)
	l.fault("compose start "+leader, func() { run("start", leader) })
	l.waitAcked(50)
	l.check("docker-compose-file")
}
