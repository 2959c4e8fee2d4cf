package node

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// TestConnectionLogIsBounded: a flood of refused connections from many addresses costs at
// most maxConnEntries detailed entries and one summary per flush, and repeats are counted.
func TestConnectionLogIsBounded(t *testing.T) {
	l := newConnLog(&Node{cfg: Config{NodeID: "dc1-a"}})
	var got []*fsmpb.RecordEvent
	var ips []string
	l.record = func(_ context.Context, k connKey, ev *fsmpb.RecordEvent) {
		got = append(got, ev)
		ips = append(ips, k.ip)
	}
	for i := range maxConnKeys + 100 {
		addr := &net.TCPAddr{IP: net.IPv4(10, 0, byte(i/256), byte(i%256)), Port: 4000}
		l.note("connection refused", "", addr, "TLS handshake failed: EOF")
	}
	for range 5 {
		l.note("connection refused", "", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 1}, "TLS handshake failed: EOF")
	}
	l.flush(context.Background())
	if len(got) != maxConnEntries+1 {
		t.Fatalf("%d entries written", len(got))
	}
	if got[0].Detail != "6 since the last check: TLS handshake failed: EOF" || ips[0] != "10.0.0.7" || strings.Contains(got[0].Detail, "10.0.0.7") {
		t.Fatalf("first entry %+v from %s", got[0], ips[0])
	}
	want := fmt.Sprintf("%d more connection events from %d addresses, and 100 past the log's bound", maxConnKeys-maxConnEntries, maxConnKeys-maxConnEntries)
	if last := got[len(got)-1]; !strings.HasPrefix(last.Detail, want) || ips[len(ips)-1] != "" {
		t.Fatalf("summary %+v, want %q", last, want)
	}
	got = nil
	l.flush(context.Background())
	if len(got) != 0 {
		t.Fatalf("an empty log wrote %d entries", len(got))
	}
}
