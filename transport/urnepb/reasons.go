// Package urnepb holds the generated API of an Urne node (election, operator and internal
// services) and the error reasons carried in its statuses.
package urnepb

// Reasons carried in the google.rpc.ErrorInfo detail of every error status a node returns,
// with Domain ErrorDomain. The client maps each one to a typed error.
const (
	ErrorDomain = "urne.v1"

	ReasonInvalid          = "INVALID"
	ReasonNoElection       = "NO_ELECTION"
	ReasonWrongElection    = "WRONG_ELECTION"
	ReasonWrongPhase       = "WRONG_PHASE"
	ReasonUnknownVoter     = "UNKNOWN_VOTER"
	ReasonAlreadyVoted     = "ALREADY_VOTED"
	ReasonBallotTooLarge   = "BALLOT_TOO_LARGE"
	ReasonDuplicateBallot  = "DUPLICATE_BALLOT"
	ReasonUnknownCommand   = "UNKNOWN_COMMAND"
	ReasonNoLeader         = "NO_LEADER"
	ReasonOutcomeUnknown   = "OUTCOME_UNKNOWN"
	ReasonNotFound         = "NOT_FOUND"
	ReasonPermissionDenied = "PERMISSION_DENIED"
	ReasonInternal         = "INTERNAL"
	ReasonSealed           = "SEALED"
	ReasonRuleViolated     = "RULE_VIOLATED"
	ReasonNotAllowed       = "NOT_ALLOWED"
	ReasonLocked           = "LOCKED"
	ReasonAuthFailed       = "AUTH_FAILED"
	ReasonCodeExpired      = "CODE_EXPIRED"
	ReasonCodeInvalid      = "CODE_INVALID"
	ReasonSessionInvalid   = "SESSION_INVALID"
	ReasonOutsideWindow    = "OUTSIDE_WINDOW"
	ReasonEnvelopeInvalid  = "ENVELOPE_INVALID"
	ReasonNotConfigured    = "NOT_CONFIGURED"
	// ReasonChaosDisabled: a chaos request reached a node started without chaos enabled.
	ReasonChaosDisabled = "CHAOS_DISABLED"
)

// Retryable reports whether a request that failed with reason may be sent again with the
// same request id: the write either never happened or will be deduplicated.
func Retryable(reason string) bool {
	return reason == ReasonNoLeader || reason == ReasonOutcomeUnknown
}
