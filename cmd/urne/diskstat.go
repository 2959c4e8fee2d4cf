package main

import (
	"fmt"
	"strconv"
	"strings"
)

// blockSector is the unit of the sector counts in a block device's stat file, whatever the
// device's own sector size.
const blockSector = 512

// parseBlockStat reads the bytes written from the contents of /sys/block/DEV/stat: its
// seventh field counts the 512-byte sectors written since boot.
func parseBlockStat(raw []byte) (uint64, error) {
	f := strings.Fields(string(raw))
	if len(f) < 7 {
		return 0, fmt.Errorf("a block device's stat has at least 7 fields, this one %d", len(f))
	}
	sectors, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sectors written: %w", err)
	}
	if sectors > ^uint64(0)/blockSector {
		return 0, fmt.Errorf("sectors written: %d overflows a byte count", sectors)
	}
	return sectors * blockSector, nil
}
