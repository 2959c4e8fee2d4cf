//go:build !failpoints

package failpoint

import (
	"errors"
	"testing"
)

func TestCompiledOut(t *testing.T) {
	if err := Enable(FSMCommit, "panic"); !errors.Is(err, ErrNotCompiled) {
		t.Fatalf("Enable without the tag: %v, want ErrNotCompiled", err)
	}
	if New("n", FSMCommit).Inject() != nil || New("n", ClockOffset).Offset() != 0 || Armed() != nil {
		t.Fatal("a compiled-out point acted")
	}
}
