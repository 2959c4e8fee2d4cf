package test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the binaries this run built.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, bin := range []string{builtBin, fpBin} {
		if bin != "" {
			_ = os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}
