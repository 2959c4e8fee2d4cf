package failpoint

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec string
		want action
		bad  bool
	}{
		{spec: "off", want: action{kind: "off"}},
		{spec: "enospc", want: action{kind: "enospc"}},
		{spec: "3*eio", want: action{kind: "eio", count: 3}},
		{spec: "error(disk on fire)", want: action{kind: "error", text: "disk on fire"}},
		{spec: "exit", want: action{kind: "exit", code: ExitCode}},
		{spec: "exit(3)", want: action{kind: "exit", code: 3}},
		{spec: "sleep(20ms)", want: action{kind: "sleep", dur: 20 * time.Millisecond}},
		{spec: "offset(-2h)", want: action{kind: "offset", dur: -2 * time.Hour}},
		{spec: "explode", bad: true},
		{spec: "0*eio", bad: true},
		{spec: "sleep(forever)", bad: true},
		{spec: "error(x", bad: true},
	}
	for _, tt := range tests {
		got, err := parseSpec(tt.spec)
		if tt.bad {
			if !errors.Is(err, ErrBadSpec) {
				t.Errorf("%q: error %v, want ErrBadSpec", tt.spec, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

func TestErrorsWrapErrno(t *testing.T) {
	for kind, want := range map[string]error{"enospc": syscall.ENOSPC, "eio": syscall.EIO} {
		err := action{kind: kind}.errorOf(RaftBeforeAppend)
		if !errors.Is(err, want) || !errors.Is(err, ErrInjected) {
			t.Errorf("%s: %v does not wrap %v and ErrInjected", kind, err, want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	got, err := ParseEnv("fsm/commit=enospc; dc1-a:clock/offset=offset(1h);")
	if err != nil || len(got) != 2 || got["fsm/commit"] != "enospc" || got["dc1-a:clock/offset"] != "offset(1h)" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := ParseEnv("fsm/commit"); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("missing spec: %v", err)
	}
}

// FuzzParseSpec: a spec from outside never panics the parser.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"3*eio", "exit(2)", "sleep(1s)", "error()", "*", "(", "offset(-1h)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseSpec(s)
		_, _ = ParseEnv(s)
	})
}
