package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// silence is how long a read waits before a test concludes that nothing is coming.
const silence = 200 * time.Millisecond

// echoServer is endpoint "b": it echoes every connection and counts the bytes it received.
type echoServer struct {
	addr     string
	received atomic.Int64
}

func startEcho(t *testing.T, n *Network, name string) *echoServer {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := n.Listener(name, raw)
	s := &echoServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); s.echo(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *echoServer) echo(c net.Conn) {
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		s.received.Add(int64(n))
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func dial(t *testing.T, n *Network, from, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := n.Dialer(from).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reports whether the same bytes came back within wait.
func roundTrip(t *testing.T, c net.Conn, msg string, wait time.Duration) bool {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf) == msg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEchoWithoutRules(t *testing.T) {
	n := New()
	s := startEcho(t, n, "b")
	c := dial(t, n, "a", s.addr)
	if !roundTrip(t, c, "hello", 5*time.Second) {
		t.Fatal("no echo on a healthy network")
	}
}

func TestPartitionSilencesOpenConnectionAtOnce(t *testing.T) {
	n := New()
	s := startEcho(t, n, "b")
	c := dial(t, n, "a", s.addr)
	if !roundTrip(t, c, "before", 5*time.Second) {
		t.Fatal("no echo before the partition")
	}
	n.Partition("a", "b")
	if roundTrip(t, c, "during", silence) {
		t.Fatal("data crossed a partition")
	}
	if got := s.received.Load(); got != int64(len("before")) {
		t.Fatalf("server received %d bytes, want only the %d sent before the partition", got, len("before"))
	}
	n.Heal()
	if roundTrip(t, c, "after", silence) {
		t.Fatal("a connection that lost data carried data again after Heal")
	}
	if !roundTrip(t, dial(t, n, "a", s.addr), "fresh", 5*time.Second) {
		t.Fatal("no echo on a new connection after Heal")
	}
}

func TestBlockIsOneWay(t *testing.T) {
	tests := []struct {
		name           string
		from, to       string
		serverReceives bool
	}{
		{"client to server dropped", "a", "b", false},
		{"server to client dropped", "b", "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := New()
			s := startEcho(t, n, "b")
			c := dial(t, n, "a", s.addr)
			n.Block(tt.from, tt.to)
			if roundTrip(t, c, "ping", silence) {
				t.Fatal("echo came back through a blocked direction")
			}
			if tt.serverReceives {
				waitFor(t, "the server to receive ping", func() bool { return s.received.Load() == 4 })
			} else if got := s.received.Load(); got != 0 {
				t.Fatalf("server received %d bytes through a blocked direction", got)
			}
		})
	}
}

func TestDialWaitsUntilConnectable(t *testing.T) {
	n := New()
	s := startEcho(t, n, "b")
	n.Block("b", "a") // one dropped direction is enough to stop a TCP handshake
	ctx, cancel := context.WithTimeout(context.Background(), silence)
	defer cancel()
	if _, err := n.Dialer("a").DialContext(ctx, "tcp", s.addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial across a block: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := n.Dialer("a").DialContext(ctx, "tcp", s.addr)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	n.Heal()
	if err := <-done; err != nil {
		t.Fatalf("dial waiting for Heal: %v", err)
	}
}

func TestDelay(t *testing.T) {
	const d = 150 * time.Millisecond
	n := New()
	s := startEcho(t, n, "b")
	c := dial(t, n, "a", s.addr)
	n.Delay("a", "b", d)
	start := time.Now()
	if !roundTrip(t, c, "slow", 5*time.Second) {
		t.Fatal("no echo with a delay")
	}
	if took := time.Since(start); took < d {
		t.Fatalf("round trip took %v, want at least %v", took, d)
	}
}

func TestIsolate(t *testing.T) {
	n := New()
	s := startEcho(t, n, "b")
	fromA := dial(t, n, "a", s.addr)
	plain, err := net.Dial("tcp", s.addr) // a peer dialing without faultnet
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	c := startEcho(t, n, "c")
	aToC := dial(t, n, "a", c.addr)
	n.Isolate("b")
	if roundTrip(t, fromA, "x", silence) || roundTrip(t, plain, "y", silence) {
		t.Fatal("data reached an isolated endpoint")
	}
	if !roundTrip(t, aToC, "z", 5*time.Second) {
		t.Fatal("isolating b cut a from c")
	}
}

// TestRulesChangeUnderTraffic flips rules while connections carry data; run it with -race.
func TestRulesChangeUnderTraffic(t *testing.T) {
	n := New()
	s := startEcho(t, n, "b")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		c := dial(t, n, "a", s.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.Write([]byte("traffic!"))
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = c.Read(buf)
			}
		}()
	}
	for i := 0; i < 50; i++ {
		n.Partition("a", "b")
		n.Delay("b", "a", time.Millisecond)
		n.Heal()
	}
	close(stop)
	wg.Wait()
	if !roundTrip(t, dial(t, n, "a", s.addr), "end", 5*time.Second) {
		t.Fatal("no echo after the rules settled")
	}
}

func TestRulesListsActiveRules(t *testing.T) {
	n := New()
	n.Partition("a", "b")
	n.Delay("a", "c", time.Second)
	n.Isolate("d")
	want := []Rule{{Kind: "delay", From: "a", To: "c", Delay: time.Second}, {Kind: "drop", From: "a", To: "b"},
		{Kind: "drop", From: "b", To: "a"}, {Kind: "isolate", From: "d"}}
	if got := n.Rules(); !slices.Equal(got, want) {
		t.Fatalf("rules %v, want %v", got, want)
	}
	n.Heal()
	if got := n.Rules(); len(got) != 0 {
		t.Fatalf("rules after heal: %v", got)
	}
}
