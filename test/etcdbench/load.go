// Command etcdbench measures a 3-member etcd cluster and a 3-node Urne cluster side by side:
// 1 KiB puts against 1 KiB casts from N concurrent clients, fsync on in both. It lives in its
// own module so that the Urne runtime never depends on etcd.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Result is one load run.
type Result struct {
	System      string  `json:"system"`
	Clients     int     `json:"clients"`
	Seconds     float64 `json:"seconds"`
	Ops         int     `json:"ops"`
	Failed      int     `json:"failed"`
	PerSecond   float64 `json:"per_second"`
	P50Millis   float64 `json:"p50_ms"`
	P99Millis   float64 `json:"p99_ms"`
	ValueBytes  int     `json:"value_bytes"`
	Description string  `json:"description"`
}

// putLoad runs clients goroutines putting distinct keys with valueSize-byte values for d.
func putLoad(ctx context.Context, endpoints []string, clients, valueSize int, d time.Duration) (Result, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return Result{}, err
	}
	defer cli.Close()
	value := make([]byte, valueSize)
	if _, err := rand.Read(value); err != nil {
		return Result{}, err
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failed    atomic.Int64
		seq       atomic.Int64
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				key := fmt.Sprintf("ballot/%012d", seq.Add(1))
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cli.Put(rctx, key, string(value))
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return summarize("etcd", clients, valueSize, elapsed, latencies, int(failed.Load())), nil
}

func summarize(system string, clients, valueSize int, elapsed time.Duration, lat []time.Duration, failed int) Result {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	return Result{System: system, Clients: clients, Seconds: elapsed.Seconds(), Ops: len(lat), Failed: failed,
		PerSecond: float64(len(lat)) / elapsed.Seconds(), P50Millis: q(0.50), P99Millis: q(0.99), ValueBytes: valueSize}
}
