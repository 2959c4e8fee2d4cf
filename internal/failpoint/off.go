//go:build !failpoints

package failpoint

import "time"

// Compiled reports whether points can fire in this binary.
const Compiled = false

// Point is a place in the code where a fault can be injected; without the failpoints tag it
// does nothing.
type Point struct{}

// New names the point name of scope (a node id, or "" for the whole process).
func New(scope, name string) Point { return Point{} }

// Inject returns nil.
func (Point) Inject() error { return nil }

// Offset returns 0.
func (Point) Offset() time.Duration { return 0 }

// Enable fails: points are compiled out.
func Enable(name, spec string) error { return ErrNotCompiled }

// Disable does nothing.
func Disable(name string) {}

// DisableAll does nothing.
func DisableAll() {}

// Armed returns nothing.
func Armed() map[string]string { return nil }
