//go:build linux || darwin

package main

import (
	"os"
	"syscall"
)

// openDsync creates path for writes that each return only once the data is on the disk.
func openDsync(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_DSYNC, 0o600)
}

// writeSynced writes p to a file opened by openDsync: the write itself is synced.
func writeSynced(f *os.File, p []byte) error {
	_, err := f.Write(p)
	return err
}
