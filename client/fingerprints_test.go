package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/urne-vote/urne/client/internal/fakeurne"
)

func TestFingerprintsListsTheBox(t *testing.T) {
	fc := startCluster(t, 3)
	fc.Seed(250, "w") // more voters than two pages of fingerprints
	c := newTestClient(t, fc, nil, nil)
	want := map[string]bool{}
	for i := 1; i <= 250; i++ {
		ballot := fmt.Appendf(nil, "ballot %d", i)
		if _, err := c.Cast(context.Background(), fmt.Sprintf("w%06d", i), ballot); err != nil {
			t.Fatal(err)
		}
		fp := sha256.Sum256(ballot)
		want[string(fp[:])] = true
	}
	// The first node asked fails before sending anything: the listing moves to another node.
	fc.Nodes[0].Inject(fakeurne.Fault{Method: "ListFingerprints", Times: 1, Err: status.Error(codes.Unavailable, "connection reset")})
	got := map[string]bool{}
	err := c.Fingerprints(context.Background(), func(fp []byte) error {
		if got[string(fp)] {
			t.Errorf("fingerprint %x delivered twice", fp)
		}
		got[string(fp)] = true
		return nil
	}, Stale())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d fingerprints, want %d", len(got), len(want))
	}
	if got := nodesOf(fc.Calls("ListFingerprints")); len(got) != 2 || got[0] != "n1" || got[1] == "n1" {
		t.Errorf("listing went to %v, want n1 then another node", got)
	}
}

func TestFingerprintsStopsOnCallbackError(t *testing.T) {
	fc := startCluster(t, 1)
	c := newTestClient(t, fc, nil, nil)
	for i := 1; i <= 3; i++ {
		if _, err := c.Cast(context.Background(), fmt.Sprintf("v%06d", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	enough := errors.New("enough")
	calls := 0
	err := c.Fingerprints(context.Background(), func([]byte) error { calls++; return enough })
	if !errors.Is(err, enough) || calls != 1 {
		t.Fatalf("error = %v after %d calls, want the callback's error after 1", err, calls)
	}
	if got := len(fc.Calls("ListFingerprints")); got != 1 {
		t.Errorf("listing sent %d times, want 1", got)
	}
}
