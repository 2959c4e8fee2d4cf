package test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/urne-vote/urne/test/harness"
)

// TestHeldNonvoterIsNotPromotedBack: a voter demoted while every node holds it stays a
// nonvoter although autopilot would promote its role, and is promoted once released.
func TestHeldNonvoterIsNotPromotedBack(t *testing.T) {
	c := harness.New(t, "2+2+1")
	op := c.Client("operator")
	ctx := harness.Context(t, 2*time.Minute)
	voters := func() []string {
		peers, err := op.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range peers.GetPeers() {
			if p.GetSuffrage() == "voter" {
				out = append(out, p.GetId())
			}
		}
		return out
	}
	if l := c.WaitLeader(); l == "dc1-a" {
		if _, err := op.TransferLeadership(ctx, "dc2-a"); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.Running() {
		if _, err := op.HoldNonvoter(ctx, c.GRPC(id), "dc1-a", 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.ChangeSuffrage(ctx, "dc1-a", false); err != nil {
		t.Fatal(err)
	}
	// Autopilot promotes a healthy server after 2 s of stability and reconciles every second.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(voters(), "dc1-a") {
			t.Fatal("autopilot promoted the held nonvoter back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, id := range c.Running() {
		if _, err := op.HoldNonvoter(ctx, c.GRPC(id), "dc1-a", 0); err != nil {
			t.Fatal(err)
		}
	}
	harness.Poll(t, 30*time.Second, func() error {
		if !slices.Contains(voters(), "dc1-a") {
			return fmt.Errorf("dc1-a is not a voter again: %v", voters())
		}
		return nil
	})
}
