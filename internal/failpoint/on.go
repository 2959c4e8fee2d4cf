//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Compiled reports whether points can fire in this binary.
const Compiled = true

// Point is a place in the code where a fault can be injected.
type Point struct {
	scope, name string
}

// New names the point name of scope (a node id, or "" for the whole process).
func New(scope, name string) Point { return Point{scope: scope, name: name} }

var registry = struct {
	sync.Mutex
	armed map[string]*action // "name" or "scope:name"
	specs map[string]string
}{armed: map[string]*action{}, specs: map[string]string{}}

func init() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	specs, err := ParseEnv(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", EnvVar, err)
		os.Exit(2)
	}
	for name, spec := range specs {
		_ = Enable(name, spec)
	}
}

// Enable arms name ("point" or "scope:point") with spec.
func Enable(name, spec string) error {
	a, err := parseSpec(spec)
	if err != nil {
		return err
	}
	registry.Lock()
	defer registry.Unlock()
	if a.kind == "off" {
		delete(registry.armed, name)
		delete(registry.specs, name)
		return nil
	}
	registry.armed[name], registry.specs[name] = &a, spec
	return nil
}

// Disable disarms name.
func Disable(name string) { _ = Enable(name, "off") }

// DisableAll disarms every point.
func DisableAll() {
	registry.Lock()
	defer registry.Unlock()
	registry.armed, registry.specs = map[string]*action{}, map[string]string{}
}

// Armed returns the armed points and their specs.
func Armed() map[string]string {
	registry.Lock()
	defer registry.Unlock()
	out := map[string]string{}
	for k, v := range registry.specs {
		out[k] = v
	}
	return out
}

// take returns the action armed for p (scoped first) and counts the hit.
func (p Point) take() (action, bool) {
	registry.Lock()
	defer registry.Unlock()
	key := p.scope + ":" + p.name
	a, ok := registry.armed[key]
	if !ok {
		key = p.name
		a, ok = registry.armed[key]
	}
	if !ok {
		return action{}, false
	}
	if a.count > 0 {
		a.count--
		if a.count == 0 {
			delete(registry.armed, key)
			delete(registry.specs, key)
		}
	}
	return *a, true
}

// Inject performs the armed action: it returns an error, panics, ends the process or stalls.
func (p Point) Inject() error {
	a, ok := p.take()
	if !ok {
		return nil
	}
	switch a.kind {
	case "panic":
		panic(fmt.Sprintf("failpoint %s: %s", p.name, a.text))
	case "exit":
		fmt.Fprintf(os.Stderr, "failpoint %s: exit %d\n", p.name, a.code)
		os.Exit(a.code)
	case "sleep":
		time.Sleep(a.dur)
		return nil
	case "offset":
		return nil
	}
	return a.errorOf(p.name)
}

// Offset returns the clock shift armed at p, or 0.
func (p Point) Offset() time.Duration {
	a, ok := p.take()
	if !ok || a.kind != "offset" {
		return 0
	}
	return a.dur
}
