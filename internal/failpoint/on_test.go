//go:build failpoints

package failpoint

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestPointsFireByScopeAndCount(t *testing.T) {
	t.Cleanup(DisableAll)
	a, b := New("n1", RaftBeforeAppend), New("n2", RaftBeforeAppend)
	if err := Enable("n1:"+RaftBeforeAppend, "2*enospc"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := a.Inject(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("hit %d on n1: %v, want ENOSPC", i, err)
		}
		if err := b.Inject(); err != nil {
			t.Fatalf("n2 was not armed: %v", err)
		}
	}
	if err := a.Inject(); err != nil {
		t.Fatalf("third hit: %v, want the point disarmed after two", err)
	}
	if len(Armed()) != 0 {
		t.Fatalf("armed %v after the count ran out", Armed())
	}
	if err := Enable(RaftBeforeAppend, "eio"); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(b.Inject(), syscall.EIO) || !errors.Is(a.Inject(), syscall.EIO) {
		t.Fatal("an unscoped point must hit every scope")
	}
	Disable(RaftBeforeAppend)
	if a.Inject() != nil {
		t.Fatal("disabled point fired")
	}
}

func TestOffsetAndPanic(t *testing.T) {
	t.Cleanup(DisableAll)
	p := New("", ClockOffset)
	if p.Offset() != 0 {
		t.Fatal("offset of an unarmed point")
	}
	_ = Enable(ClockOffset, "offset(90m)")
	if first, second := p.Offset(), p.Offset(); first != 90*time.Minute || second != first {
		t.Fatal("offset not applied on every read")
	}
	_ = Enable(FSMCommit, "panic(boom)")
	defer func() {
		if recover() == nil {
			t.Fatal("panic action did not panic")
		}
	}()
	_ = New("", FSMCommit).Inject()
}
