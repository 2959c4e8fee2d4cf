package failpoint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names of the points placed in production code.
const (
	// FSMBeforeApply is hit before the state machine applies a batch of committed entries.
	FSMBeforeApply = "fsm/before-apply"
	// FSMCommit is hit inside the state database's write transaction, before its commit: an
	// error makes the commit fail as a failed fsync or a full disk would.
	FSMCommit = "fsm/commit"
	// FSMAfterApply is hit after a batch was committed, before raft hears the answers.
	FSMAfterApply = "fsm/after-apply"
	// SnapshotPersist is hit before a snapshot is written to the snapshot store.
	SnapshotPersist = "snapshot/persist"
	// SnapshotAfterPersist is hit after a snapshot was written, before raft hears of it.
	SnapshotAfterPersist = "snapshot/after-persist"
	// SnapshotBeforeRestore is hit before a snapshot replaces the state (install or start).
	SnapshotBeforeRestore = "snapshot/before-restore"
	// SnapshotAfterRestore is hit after a snapshot replaced the state.
	SnapshotAfterRestore = "snapshot/after-restore"
	// RaftBeforeAppend is hit before entries are written to the raft log.
	RaftBeforeAppend = "raft/before-append"
	// RaftAfterAppend is hit after entries were written to the raft log: an error there is
	// a write whose fsync failed.
	RaftAfterAppend = "raft/after-append"
	// ClockOffset shifts the leader's clock that stamps commands.
	ClockOffset = "clock/offset"
)

// Names lists every point, in the order a write meets them.
var Names = []string{RaftBeforeAppend, RaftAfterAppend, FSMBeforeApply, FSMCommit, FSMAfterApply,
	SnapshotPersist, SnapshotAfterPersist, SnapshotBeforeRestore, SnapshotAfterRestore, ClockOffset}

// Errors of the package.
var (
	// ErrInjected is wrapped by every error a point returns.
	ErrInjected = errors.New("failpoint")
	// ErrNotCompiled: the binary was built without the failpoints tag.
	ErrNotCompiled = errors.New("failpoints are not compiled into this binary (build with -tags failpoints)")
	// ErrBadSpec: a spec does not parse.
	ErrBadSpec = errors.New("bad failpoint spec")
)

// ExitCode is the status of a process ended by an exit action without a code.
const ExitCode = 86

// action is a parsed spec.
type action struct {
	kind  string // error, enospc, eio, panic, exit, sleep, offset, off
	text  string
	code  int
	dur   time.Duration
	count int // remaining hits; 0 means unlimited
}

// parseSpec parses [count*]kind[(arg)].
func parseSpec(spec string) (action, error) {
	var a action
	s := strings.TrimSpace(spec)
	if n, rest, ok := strings.Cut(s, "*"); ok {
		c, err := strconv.Atoi(n)
		if err != nil || c <= 0 {
			return a, fmt.Errorf("%w %q: count %q is not a positive number", ErrBadSpec, spec, n)
		}
		a.count, s = c, rest
	}
	kind, arg := s, ""
	if i := strings.IndexByte(s, '('); i >= 0 {
		if !strings.HasSuffix(s, ")") {
			return a, fmt.Errorf("%w %q: missing closing parenthesis", ErrBadSpec, spec)
		}
		kind, arg = s[:i], s[i+1:len(s)-1]
	}
	a.kind = kind
	return a, a.setArg(spec, arg)
}

func (a *action) setArg(spec, arg string) error {
	var err error
	switch a.kind {
	case "off", "enospc", "eio":
	case "error", "panic":
		a.text = arg
	case "exit":
		a.code = ExitCode
		if arg != "" {
			a.code, err = strconv.Atoi(arg)
		}
	case "sleep", "offset":
		a.dur, err = time.ParseDuration(arg)
	default:
		return fmt.Errorf("%w %q: unknown action %q (want off, error, enospc, eio, panic, exit, sleep, offset)", ErrBadSpec, spec, a.kind)
	}
	if err != nil {
		return fmt.Errorf("%w %q: %v", ErrBadSpec, spec, err)
	}
	return nil
}

// errorOf is the error an error-kind action returns at point name.
func (a action) errorOf(name string) error {
	switch a.kind {
	case "enospc":
		return fmt.Errorf("%w %s: %w", ErrInjected, name, syscall.ENOSPC)
	case "eio":
		return fmt.Errorf("%w %s: %w", ErrInjected, name, syscall.EIO)
	}
	return fmt.Errorf("%w %s: %s", ErrInjected, name, a.text)
}

// ParseEnv parses "name=spec;scope:name=spec" as URNE_FAILPOINTS holds it.
func ParseEnv(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, term := range strings.Split(v, ";") {
		if strings.TrimSpace(term) == "" {
			continue
		}
		name, spec, ok := strings.Cut(term, "=")
		if !ok {
			return nil, fmt.Errorf("%w %q: want name=spec", ErrBadSpec, term)
		}
		if _, err := parseSpec(spec); err != nil {
			return nil, err
		}
		out[strings.TrimSpace(name)] = strings.TrimSpace(spec)
	}
	return out, nil
}

// EnvVar names the environment variable a failpoints build reads at start.
const EnvVar = "URNE_FAILPOINTS"
