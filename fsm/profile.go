package fsm

import (
	"fmt"
	"slices"
	"time"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Profiles an election follows, fixed when it is created.
const (
	// ProfileTest accepts opaque casts without a session and sets no rule on the window:
	// benchmarks, demos and tests. Stored as "" so that elections of the first version are test ones.
	ProfileTest = "test"
	// ProfileCivilService follows the French civil-service decrees on electronic voting: the
	// full path (roll with secrets, sessions, envelopes), a window of 24 hours to 8 days,
	// the bureau seals, opens, and records the tally.
	ProfileCivilService = "civil-service"
)

// Actors as the node names them in Command.actor (the principals of the access policy).
const (
	ActorNode      = "node"
	ActorOperator  = "client:operator"
	ActorOrganizer = "client:organizer"
	ActorBureau    = "client:bureau"
	ActorApp       = "client:app"
	ActorObserver  = "client:observer"
)

// Authentication bounds of every profile.
const (
	// MaxAuthFailures locks an account: "after 5 unsuccessful attempts the account is blocked".
	MaxAuthFailures         = 5
	DefaultSessionTimeout   = 15 * time.Minute
	DefaultOTPValidity      = 5 * time.Minute
	maxCodesPerLogin        = 3
	maxSessionTimeout       = 24 * time.Hour
	maxOTPValidity          = time.Hour
	deadlineActor           = "deadline"
	bureauFunctionPresident = "president"
)

// profileRules is what a profile asks of an election.
type profileRules struct {
	legal                bool
	minWindow, maxWindow time.Duration
}

var profiles = map[string]profileRules{
	"":                  {},
	ProfileCivilService: {legal: true, minWindow: 24 * time.Hour, maxWindow: 8 * 24 * time.Hour},
}

// normalizeProfile maps the names a request may use to the stored one.
func normalizeProfile(p string) (string, error) {
	if p == ProfileTest {
		p = ""
	}
	if _, ok := profiles[p]; !ok {
		return "", fmt.Errorf("%w: profile %q: want %q or %q", ErrInvalid, p, ProfileTest, ProfileCivilService)
	}
	return p, nil
}

func rulesOf(e *fsmpb.ElectionState) profileRules { return profiles[e.Profile] }

func profileName(e *fsmpb.ElectionState) string {
	if e.Profile == "" {
		return ProfileTest
	}
	return e.Profile
}

// requireActor refuses, in a legal election, a command that its profile reserves to other roles.
func requireActor(e *fsmpb.ElectionState, c *fsmpb.Command, what string, allowed ...string) error {
	if !rulesOf(e).legal || slices.Contains(allowed, c.GetActor().GetPrincipal()) {
		return nil
	}
	return fmt.Errorf("%w: in a %s election only %v may %s; this request came from %q",
		ErrNotAllowed, profileName(e), allowed, what, c.GetActor().GetPrincipal())
}

// checkWindow checks a voting window against the profile: both ends or neither, closing after
// opening, a length the decrees allow, and (legal profiles) a window still ahead at time now.
func checkWindow(rules profileRules, cfg *fsmpb.ElectionConfig, now int64) error {
	opens, closes := cfg.GetOpensAtUnixNano(), cfg.GetClosesAtUnixNano()
	if opens == 0 && closes == 0 {
		return nil
	}
	if opens <= 0 || closes <= 0 {
		return fmt.Errorf("%w: a voting window needs both an opening and a closing time", ErrRuleViolated)
	}
	length := time.Duration(closes - opens)
	if length <= 0 {
		return fmt.Errorf("%w: the window closes (%s) before it opens (%s)", ErrRuleViolated, stamp(closes), stamp(opens))
	}
	if rules.minWindow > 0 && (length < rules.minWindow || length > rules.maxWindow) {
		return fmt.Errorf("%w: the window lasts %s; the decrees allow %s to %s",
			ErrRuleViolated, length, rules.minWindow, rules.maxWindow)
	}
	if rules.legal && opens <= now {
		return fmt.Errorf("%w: the window opens at %s, which has already passed (now %s)", ErrRuleViolated, stamp(opens), stamp(now))
	}
	return nil
}

// inWindow refuses a command stamped outside the election's window, if it has one.
func inWindow(e *fsmpb.ElectionState, now int64) error {
	opens, closes := e.GetConfig().GetOpensAtUnixNano(), e.GetConfig().GetClosesAtUnixNano()
	if opens != 0 && now < opens {
		return fmt.Errorf("%w: voting opens at %s (now %s)", ErrOutsideWindow, stamp(opens), stamp(now))
	}
	if closes != 0 && now >= closes {
		return fmt.Errorf("%w: voting closed at %s (now %s)", ErrOutsideWindow, stamp(closes), stamp(now))
	}
	return nil
}

func sessionTimeout(e *fsmpb.ElectionState) int64 {
	if d := e.GetConfig().GetSessionTimeoutNanos(); d > 0 {
		return d
	}
	return int64(DefaultSessionTimeout)
}

func otpValidity(e *fsmpb.ElectionState) int64 {
	if d := e.GetConfig().GetOtpValidityNanos(); d > 0 {
		return d
	}
	return int64(DefaultOTPValidity)
}

// stamp formats a leader time stamp for messages.
func stamp(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }
