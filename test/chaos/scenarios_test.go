package chaos_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/chaos"
	"github.com/urne-vote/urne/test/harness"
)

// Scenarios on in-process nodes: the network between nodes goes through faultnet, clients
// reach every node directly. Each test fails on any violation of the checker.

const witness = "wit-a"

// follower returns a running datacenter node that does not lead.
func follower(e *chaos.Env) string {
	leader := e.C.WaitLeader()
	for _, id := range e.C.Running() {
		if id != leader && id != witness {
			return id
		}
	}
	e.T.Fatal("no datacenter follower")
	return ""
}

func TestPartitionedLeaderInMinority(t *testing.T) {
	chaos.Run(t, "partitioned-leader-minority", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		leader := e.C.WaitLeader()
		minority := []string{leader, follower(e)}
		majority := e.C.Others(minority...)
		e.Fault(fmt.Sprintf("partition %v from %v", minority, majority), func() { e.C.PartitionGroups(minority, majority) })
		if now := e.C.WaitNewLeader(leader, 30*time.Second); slices.Contains(minority, now) {
			t.Fatalf("%s leads from the minority", now)
		}
		e.WaitAcked(50, 30*time.Second)
		e.Hold(3 * time.Second)
	})
}

func TestDatacenterSplitWithWitness(t *testing.T) {
	chaos.Full(t)
	chaos.Run(t, "dc-split-with-witness", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		dc1, dc2 := e.C.InDatacenter("dc1"), e.C.InDatacenter("dc2")
		e.Fault("partition dc1 from dc2 (the witness reaches both)", func() { e.C.PartitionGroups(dc1, dc2) })
		e.WaitAcked(50, 30*time.Second)
		e.Hold(3 * time.Second)
	})
}

func TestDatacenterSplitWithoutWitness(t *testing.T) {
	chaos.Run(t, "dc-split-without-witness", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		dc1, dc2 := e.C.InDatacenter("dc1"), e.C.InDatacenter("dc2")
		e.Fault("partition dc1 from dc2 and isolate the witness: no quorum anywhere", func() {
			e.C.PartitionGroups(dc1, dc2)
			e.C.Net.Isolate(witness)
		})
		e.Hold(4 * time.Second)
	})
}

func TestWitnessIsolated(t *testing.T) {
	chaos.Full(t)
	chaos.Run(t, "witness-isolated", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		e.Fault("isolate the witness", func() { e.C.Net.Isolate(witness) })
		e.WaitAcked(50, 30*time.Second)
		e.Hold(3 * time.Second)
	})
}

func TestRollingRestartDuringLoad(t *testing.T) {
	chaos.Run(t, "rolling-restart", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		for _, id := range e.C.IDs() {
			e.Fault("restart "+id, func() { e.C.Restart(id) })
			e.C.WaitCaughtUp(id, time.Minute)
			e.WaitAcked(20, 30*time.Second)
		}
	})
}

func TestMembershipChangeDuringLoad(t *testing.T) {
	chaos.Full(t)
	chaos.Run(t, "membership-change", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		ctx := harness.Context(t, 2*time.Minute)
		f := follower(e)
		if err := e.Membership("remove server "+f, func() error { return e.Op.RemoveServer(ctx, f) }); err != nil {
			t.Fatal(err)
		}
		e.WaitAcked(50, 30*time.Second)
		// Gossip still sees the node alive: the leader adds it back as a nonvoter and
		// autopilot promotes it once it has caught up.
		waitVoter(e, f)
		e.WaitAcked(20, 30*time.Second)
		target := follower(e)
		_ = e.Membership("transfer leadership to "+target, func() error {
			_, err := e.Op.TransferLeadership(ctx, target)
			return err
		})
		e.WaitAcked(50, 30*time.Second)
	})
}

// waitVoter waits until the leader's configuration holds id as a voter.
func waitVoter(e *chaos.Env, id string) {
	e.T.Helper()
	harness.Poll(e.T, time.Minute, func() error {
		n := e.C.Node(e.C.WaitLeader())
		if n == nil {
			return fmt.Errorf("leader stopped")
		}
		f := n.Raft().GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == id && s.Suffrage == raft.Voter {
				return nil
			}
		}
		return fmt.Errorf("%s is not a voter of %v", id, f.Configuration().Servers)
	})
}

func TestSnapshotInstallDuringLoad(t *testing.T) {
	const trailing = 32
	small := func(c *node.Config) { c.SnapshotThreshold, c.TrailingLogs = 64, trailing }
	chaos.Run(t, "snapshot-install", chaos.Options{Topology: "2+2+1", Configure: small}, func(e *chaos.Env) {
		f := follower(e)
		e.Fault("stop "+f, func() { e.C.Stop(f) })
		// What the leader holds once f is stopped bounds what f holds.
		last := e.C.Node(e.C.WaitLeader()).Raft().LastIndex()
		e.WaitAcked(300, time.Minute)
		// Casts that arrive together share an entry, so a count of casts says nothing about
		// the log. Every running node snapshots until the log it keeps begins after f's next
		// entry: whichever node leads when f returns can only send it a snapshot.
		harness.Poll(t, 2*time.Minute, func() error {
			for _, id := range e.C.Running() {
				r := e.C.Node(id).Raft()
				if err := r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
					return fmt.Errorf("snapshot on %s: %w", id, err)
				}
				if kept := max(snapshotIndex(r), trailing) - trailing + 1; kept <= last+1 {
					return fmt.Errorf("%s keeps its log from index %d, %s stopped at %d", id, kept, f, last)
				}
			}
			return nil
		})
		e.WaitAcked(100, time.Minute)
		e.Fault("start "+f+" behind the leader's snapshot", func() { e.C.Start(f) })
		e.C.WaitCaughtUp(f, time.Minute)
		if log := e.C.Log(f); !strings.Contains(log, "state restored from snapshot") {
			// What f's raft logged, and anything about snapshots, says how it caught up instead.
			var said []string
			for line := range strings.Lines(log) {
				if strings.Contains(line, "snapshot") || strings.Contains(line, `"logger":"raft"`) {
					said = append(said, line)
				}
			}
			t.Fatalf("%s caught up without installing the leader's snapshot (stopped at index %d or before); it logged:\n%s",
				f, last, strings.Join(said[max(0, len(said)-30):], ""))
		}
		e.WaitAcked(50, 30*time.Second)
	})
}

// snapshotIndex is the index of the newest snapshot r has taken or installed.
func snapshotIndex(r *raft.Raft) uint64 {
	i, _ := strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	return i
}

func TestFollowerFarBehind(t *testing.T) {
	chaos.Full(t)
	chaos.Run(t, "follower-far-behind", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		f := follower(e)
		e.Fault("isolate "+f, func() { e.C.Net.Isolate(f) })
		e.WaitAcked(500, time.Minute)
		e.Hold(2 * time.Second)
		e.Fault("reconnect "+f, func() { e.C.Net.Heal() })
		e.C.WaitCaughtUp(f, time.Minute)
		e.WaitAcked(50, 30*time.Second)
	})
}
