package test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/urne-vote/urne/audit"
	"github.com/urne-vote/urne/test/harness"
)

// TestConnectionsRecorded: a client's connection, a connection that fails its TLS handshake
// and a call the access policy refuses are written to the register at the node's next check,
// with the caller's address in the erasable connection details and counted, not one entry
// per attempt.
func TestConnectionsRecorded(t *testing.T) {
	ic := newIntegrityCluster(t)
	victim := ic.follower()
	ctx := harness.Context(t, time.Minute)
	for range 3 {
		conn, err := net.Dial("tcp", ic.GRPC(victim))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		_, _ = conn.Read(make([]byte, 64))
		conn.Close()
	}
	app := ic.Client("app", victim)
	if _, err := app.RotateKey(ctx, ic.GRPC(victim)); err == nil {
		t.Fatal("the app rotated a key")
	}
	op := ic.Client("operator")
	find := func(entries []*audit.Entry, actor, action, detail string) *audit.Entry {
		for _, e := range entries {
			if e.Actor == actor && e.Action == action && e.Object == "gRPC server of node "+victim && strings.Contains(e.Detail, detail) {
				return e
			}
		}
		return nil
	}
	var entries []*audit.Entry
	harness.Poll(t, 30*time.Second, func() error {
		entries = registerOf(t, ic.Cluster, op, victim)
		for _, want := range [][3]string{
			{"unauthenticated", "connection refused", "since the last check: TLS handshake failed"},
			{"client:app", "call refused", "/urne.v1.Operator/RotateKey"},
			{"client:app", "connect", "since the last check"},
		} {
			if find(entries, want[0], want[1], want[2]) == nil {
				return fmt.Errorf("no %q entry by %s about %q yet", want[1], want[0], want[2])
			}
		}
		// Attempts are counted, not written one by one.
		handshakes := 0
		for _, e := range entries {
			var n int
			if e.Action == "connection refused" && e.Object == "gRPC server of node "+victim {
				if _, err := fmt.Sscanf(e.Detail, "%d since", &n); err == nil {
					handshakes += n
				}
			}
		}
		if handshakes < 3 {
			return fmt.Errorf("%d failed handshakes counted", handshakes)
		}
		return nil
	})
	refused := find(entries, "unauthenticated", "connection refused", "TLS handshake failed")
	if refused.Connection == nil || !strings.HasPrefix(refused.Connection.IP, "127.") || refused.Connection.Retention != audit.RetentionLogs ||
		strings.Contains(refused.Detail, refused.Connection.IP) {
		t.Fatalf("refused connection entry %+v, connection %+v", refused, refused.Connection)
	}
}
