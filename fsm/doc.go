// Package fsm owns the replicated state of one election: the raft state machine, the command
// codec, and the encrypted bbolt database holding the voter roll, the émargement and the ballot box.
package fsm
