package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	urne := flag.String("urne", "bin/urne", "the urne binary")
	etcd := flag.String("etcd", "etcd", "the etcd server binary (Debian package etcd-server)")
	levels := flag.String("clients", "16,64,256", "concurrency levels")
	duration := flag.Duration("duration", 20*time.Second, "load duration per level")
	out := flag.String("out", "bench-compare.json", "results as JSON")
	svg := flag.String("svg", "docs/bench-compare.svg", "plot of throughput and p99 against concurrency")
	flag.Parse()
	if err := run(*urne, *etcd, *levels, *duration, *out, *svg); err != nil {
		fmt.Fprintln(os.Stderr, "etcdbench:", err)
		os.Exit(1)
	}
}

func run(urne, etcd, levels string, d time.Duration, out, svg string) error {
	var ns []int
	for _, s := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--clients %q: want positive numbers", levels)
		}
		ns = append(ns, n)
	}
	var results []Result
	for _, n := range ns {
		r, err := runEtcd(etcd, n, d)
		if err != nil {
			return fmt.Errorf("etcd at %d clients: %w", n, err)
		}
		report(r)
		results = append(results, r)
		u, err := runUrne(urne, n, d)
		if err != nil {
			return fmt.Errorf("urne at %d clients: %w", n, err)
		}
		report(u)
		results = append(results, u)
	}
	data, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(svg, []byte(plot(results)), 0o644); err != nil {
		return err
	}
	printTable(results)
	return nil
}

func report(r Result) {
	fmt.Fprintf(os.Stderr, "%-5s %4d clients: %8.0f/s  p50 %6.1f ms  p99 %6.1f ms  (%d ok, %d failed)\n",
		r.System, r.Clients, r.PerSecond, r.P50Millis, r.P99Millis, r.Ops, r.Failed)
}

// printTable prints a Markdown table with Urne's ratio to etcd at each level.
func printTable(rs []Result) {
	fmt.Println("| clients | etcd puts/s | etcd p99 | urne casts/s | urne p99 | urne/etcd |")
	fmt.Println("|---|---|---|---|---|---|")
	for i := 0; i+1 < len(rs); i += 2 {
		e, u := rs[i], rs[i+1]
		fmt.Printf("| %d | %.0f | %.1f ms | %.0f | %.1f ms | %.2f |\n", e.Clients, e.PerSecond, e.P99Millis, u.PerSecond, u.P99Millis, u.PerSecond/e.PerSecond)
	}
}

// runEtcd starts a fresh 3-member etcd cluster on loopback (fsync on, the default), loads it
// and removes it.
func runEtcd(bin string, clients int, d time.Duration) (Result, error) {
	dir, err := os.MkdirTemp("", "etcdbench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(6)
	if err != nil {
		return Result{}, err
	}
	var initial, endpoints []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
		endpoints = append(endpoints, fmt.Sprintf("127.0.0.1:%d", ports[2*i]))
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_, _ = p.Process.Wait()
		}
	}()
	for i := range 3 {
		cmd := exec.Command(bin, "--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-client-urls", "http://"+endpoints[i], "--advertise-client-urls", "http://"+endpoints[i],
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "etcdbench", "--log-level", "error")
		if err := cmd.Start(); err != nil {
			return Result{}, fmt.Errorf("start %s: %w (install the etcd-server package)", bin, err)
		}
		procs = append(procs, cmd)
	}
	if err := waitEtcd(endpoints); err != nil {
		return Result{}, err
	}
	r, err := putLoad(context.Background(), endpoints, clients, 1024, d)
	r.Description = "3-member etcd 3.4, 1 KiB puts, fsync on"
	return r, err
}

func waitEtcd(endpoints []string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "ready", "1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd cluster not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runUrne starts a fresh 3-node Urne cluster with `urne dev up`, runs `urne bench cast` and
// stops it.
func runUrne(bin string, clients int, d time.Duration) (Result, error) {
	dir, err := os.MkdirTemp("", "urnebench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	cluster := filepath.Join(dir, "cluster")
	if out, err := exec.Command(bin, "dev", "up", "--dir", cluster, "--topology", "3").CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("dev up: %v\n%s", err, out)
	}
	defer exec.Command(bin, "dev", "down", "--dir", cluster).Run()
	// Enough voters that none runs out before the duration ends.
	voters := strconv.Itoa(max(50000, int(d.Seconds())*20000))
	out, err := exec.Command(bin, "bench", "cast", "--cluster", cluster, "--voters", voters,
		"--concurrency", strconv.Itoa(clients), "--duration", d.String(), "--ballot-size", "1024", "-o", "json").Output()
	if err != nil {
		return Result{}, fmt.Errorf("bench cast: %v\n%s", err, out)
	}
	var b struct {
		Seconds      float64 `json:"seconds"`
		Acknowledged int     `json:"acknowledged"`
		PerSecond    float64 `json:"casts_per_second"`
		P50          float64 `json:"p50_ms"`
		P99          float64 `json:"p99_ms"`
		Failed       int     `json:"failed"`
		Unknown      int     `json:"unknown"`
	}
	if err := json.Unmarshal(out, &b); err != nil {
		return Result{}, fmt.Errorf("bench cast output: %v\n%s", err, out)
	}
	return Result{System: "urne", Clients: clients, Seconds: b.Seconds, Ops: b.Acknowledged, Failed: b.Failed + b.Unknown,
		PerSecond: b.PerSecond, P50Millis: b.P50, P99Millis: b.P99, ValueBytes: 1024,
		Description: "3-node Urne, 1 KiB opaque casts, fsync on, encrypted at rest, mutual TLS"}, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
