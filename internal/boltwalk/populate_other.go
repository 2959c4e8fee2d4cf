//go:build !linux

package boltwalk

const populate = 0
