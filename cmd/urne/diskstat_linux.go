package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// deviceWrites is how many bytes the block device that holds path has written since boot,
// every writer included. ok is false where path is on no block device (tmpfs, overlay).
func deviceWrites(path string) (written uint64, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false, err
	}
	dev := uint64(st.Dev) // not a uint64 on every architecture
	raw, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(dev), unix.Minor(dev)))
	if os.IsNotExist(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	written, err = parseBlockStat(raw)
	return written, err == nil, err
}
