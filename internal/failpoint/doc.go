// Package failpoint owns the fault injection points of production code: named places (FSM
// apply, state database commit, snapshot persist and install, raft log append, the leader's
// stamping clock) where a test can make the node crash, fail with an error such as ENOSPC or
// EIO, stall, or shift its clock.
//
// Points are compiled out of normal builds: without the build tag `failpoints`, Compiled is
// false, Point is an empty struct and its methods return at once, so the hooks cost nothing.
// A binary built with -tags failpoints arms points from the URNE_FAILPOINTS environment
// variable at start ("name=spec;scope:name=spec"), or from Enable at run time.
//
// A spec is [count*]action[(argument)]:
//
//	off              disarm
//	error(text)      return an error saying text
//	enospc, eio      return an error wrapping syscall.ENOSPC (disk full) or EIO (fsync failed)
//	panic(text)      panic
//	exit(code)       end the process at once, without cleanup (a crash); default code 86
//	sleep(duration)  stall, then go on
//	offset(duration) shift the clock read through Point.Offset (e.g. offset(-2h))
//
// "3*enospc" fires three times, then the point is disarmed. A name armed without scope hits
// every node of the process; "dc1-a:raft/before-append" only the node dc1-a.
package failpoint
