// Package fsmpb holds the generated messages of the replicated log: the command envelope,
// its payloads, the state machine's responses and the records it seals at rest.
package fsmpb
