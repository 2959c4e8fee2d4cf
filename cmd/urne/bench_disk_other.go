//go:build !linux && !darwin

package main

import "os"

// openDsync creates path; writeSynced syncs each write.
func openDsync(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// writeSynced writes p and syncs the file before returning.
func writeSynced(f *os.File, p []byte) error {
	if _, err := f.Write(p); err != nil {
		return err
	}
	return f.Sync()
}
