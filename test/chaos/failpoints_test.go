//go:build failpoints

package chaos_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/internal/failpoint"
	"github.com/urne-vote/urne/test/chaos"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/linearize"
)

// Scenarios that need failpoints (go test -tags failpoints). Points are armed per node
// ("node:point"), so one in-process node fails while the others run normally.

func arm(e *chaos.Env, id, point, spec string) {
	e.T.Helper()
	e.Fault(fmt.Sprintf("%s: %s=%s", id, point, spec), func() {
		if err := failpoint.Enable(id+":"+point, spec); err != nil {
			e.T.Fatal(err)
		}
	})
}

func disarm(e *chaos.Env, id, point string) {
	e.Fault(fmt.Sprintf("%s: %s lifted", id, point), func() { failpoint.Disable(id + ":" + point) })
}

// waitLogged waits until node id has logged text.
func waitLogged(e *chaos.Env, id, text string) {
	e.T.Helper()
	harness.Poll(e.T, 30*time.Second, func() error {
		if !strings.Contains(e.C.Log(id), text) {
			return fmt.Errorf("%s has not logged %q", id, text)
		}
		return nil
	})
}

func TestClockJumpsOnLeader(t *testing.T) {
	chaos.Run(t, "clock-jump", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		leader := e.C.WaitLeader()
		term := e.C.Node(leader).Raft().Stats()["term"]
		arm(e, leader, failpoint.ClockOffset, "offset(2h)")
		e.WaitAcked(100, 30*time.Second)
		arm(e, leader, failpoint.ClockOffset, "offset(-1h)")
		e.WaitAcked(100, 30*time.Second)
		disarm(e, leader, failpoint.ClockOffset)
		e.WaitAcked(50, 30*time.Second)
		if e.C.WaitLeader() != leader || e.C.Node(leader).Raft().Stats()["term"] != term {
			t.Logf("leadership moved during the jumps: stamps of two leaders are not compared")
			return
		}
		checkStampsMoveForward(t, e.H.Ops())
	})
}

// checkStampsMoveForward: with one leader throughout, a cast that began after another was
// acknowledged carries a later émargement time, even across the clock's step back; and the
// step forward did show in the stamps.
func checkStampsMoveForward(t *testing.T, ops []linearize.Op) {
	t.Helper()
	var acked []linearize.Op
	var latest int64
	for _, op := range ops {
		if op.Kind == linearize.KindCast && op.Outcome == linearize.OK && !op.Replayed {
			acked = append(acked, op)
			latest = max(latest, op.EmargedAt)
		}
	}
	if time.Unix(0, latest).Before(time.Now().Add(time.Hour)) {
		t.Fatalf("latest émargement %v: the clock's step forward never reached the stamps", time.Unix(0, latest))
	}
	for _, a := range acked {
		for _, b := range acked {
			if a.Return < b.Call && b.EmargedAt <= a.EmargedAt {
				t.Fatalf("émargement times went back: %s then %s", a, b)
			}
		}
	}
}

func TestFsyncErrors(t *testing.T) {
	chaos.Run(t, "fsync-errors", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		f := follower(e)
		arm(e, f, failpoint.RaftAfterAppend, "eio")
		waitLogged(e, f, "failed to append to logs")
		e.WaitAcked(100, 30*time.Second)
		e.Hold(2 * time.Second)
		disarm(e, f, failpoint.RaftAfterAppend)
		e.C.WaitCaughtUp(f, time.Minute)
		leader := e.C.WaitLeader()
		arm(e, leader, failpoint.RaftAfterAppend, "3*eio")
		waitLogged(e, leader, "failed to commit logs")
		e.WaitAcked(100, time.Minute)
		e.Hold(2 * time.Second)
	})
}

func TestDiskFullOnOneNode(t *testing.T) {
	chaos.Run(t, "disk-full", chaos.Options{Topology: "2+2+1"}, func(e *chaos.Env) {
		f := follower(e)
		arm(e, f, failpoint.RaftBeforeAppend, "enospc")
		waitLogged(e, f, "failed to append to logs")
		e.WaitAcked(100, 30*time.Second)
		e.Hold(2 * time.Second)
		disarm(e, f, failpoint.RaftBeforeAppend)
		e.C.WaitCaughtUp(f, time.Minute)

		leader := e.C.WaitLeader()
		arm(e, leader, failpoint.RaftBeforeAppend, "enospc")
		e.C.WaitNewLeader(leader, time.Minute)
		e.WaitAcked(100, time.Minute)
		e.Hold(2 * time.Second)
		disarm(e, leader, failpoint.RaftBeforeAppend)

		now := e.C.WaitLeader()
		arm(e, now, failpoint.SnapshotPersist, "enospc")
		if err := e.C.Node(now).Raft().Snapshot().Error(); !errors.Is(err, syscall.ENOSPC) && !strings.Contains(fmt.Sprint(err), "no space left") {
			t.Fatalf("snapshot on a full disk: %v, want ENOSPC", err)
		}
		disarm(e, now, failpoint.SnapshotPersist)
		harness.Poll(t, 30*time.Second, func() error { return e.C.Node(e.C.WaitLeader()).Raft().Snapshot().Error() })
		e.WaitAcked(50, 30*time.Second)
	})
}

// A follower whose disk is full when it must replace a conflicting suffix of its log (entries
// of a deposed leader) must catch up once space is back. Raft deleted the suffix, failed the
// append, and kept counting on the deleted entries: the follower refused every later append
// until restarted. The log store now holds the deletion back until the append succeeds.
func TestFollowerRecoversFromFullDiskDuringLogConflict(t *testing.T) {
	c := harness.New(t, "3")
	old := c.WaitLeader()
	noop, err := fsm.Encode(&fsmpb.Command{Version: 1, Type: fsmpb.CommandType_COMMAND_NOOP})
	if err != nil {
		t.Fatal(err)
	}
	c.Net.Isolate(old)
	r := c.Node(old).Raft()
	for range 5 { // appended on the cut-off leader only: never committed
		_ = r.Apply(noop, 50*time.Millisecond)
	}
	c.WaitNewLeader(old, 30*time.Second)
	harness.Poll(t, 30*time.Second, func() error {
		if r.State() == raft.Leader {
			return fmt.Errorf("%s still leads", old)
		}
		return nil
	})
	if err := failpoint.Enable(old+":"+failpoint.RaftBeforeAppend, "enospc"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(failpoint.DisableAll)
	c.Net.Heal()
	waitLogged(&chaos.Env{T: t, C: c}, old, "clearing log suffix")
	waitLogged(&chaos.Env{T: t, C: c}, old, "failed to append to logs")
	failpoint.Disable(old + ":" + failpoint.RaftBeforeAppend)
	// A command the state machine applies: the follower must get it too.
	if _, err := c.Client("organizer").CreateElection(harness.Context(t, 30*time.Second), "test-election", "After"); err != nil {
		t.Fatal(err)
	}
	c.WaitCaughtUp(old, 20*time.Second)
}
