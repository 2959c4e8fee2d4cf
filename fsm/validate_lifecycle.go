package fsm

import (
	"fmt"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Bounds of the election model.
const (
	MaxBureauMembers   = 64
	MaxCriteria        = 256
	MaxCandidates      = 1000
	MaxKeySize         = 16 << 10
	maxPermille        = 1000
	minPhoneDigits     = 6
	maxPhoneDigits     = 15
	SexFemale          = "F"
	SexMale            = "M"
	maxResultsDigest   = 64
	maxUnlockReason    = MaxTextSize
	bureauFunctionsDoc = "president, vice-president, secretary, delegate, delegate-deputy, observer or expert"
)

var bureauFunctions = map[string]bool{
	bureauFunctionPresident: true, "vice-president": true, "secretary": true, "delegate": true,
	"delegate-deputy": true, "observer": true, "expert": true,
}

func checkConfigure(p *fsmpb.ConfigureElection) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	cfg := p.Config
	if cfg == nil {
		return fmt.Errorf("%w: no configuration", ErrInvalid)
	}
	for _, f := range []struct{ what, value string }{
		{"organizer", cfg.Organizer}, {"controller", cfg.Controller}, {"processor", cfg.Processor},
	} {
		if err := checkText(f.what, f.value); err != nil {
			return err
		}
	}
	if cfg.OpensAtUnixNano < 0 || cfg.ClosesAtUnixNano < 0 || cfg.SessionTimeoutNanos < 0 || cfg.OtpValidityNanos < 0 {
		return fmt.Errorf("%w: negative time in the configuration", ErrInvalid)
	}
	if cfg.SessionTimeoutNanos > int64(maxSessionTimeout) || cfg.OtpValidityNanos > int64(maxOTPValidity) {
		return fmt.Errorf("%w: session timeout at most %s, code validity at most %s", ErrInvalid, maxSessionTimeout, maxOTPValidity)
	}
	if len(cfg.OrganizerEmails) > MaxBureauMembers {
		return fmt.Errorf("%w: %d organizer emails, at most %d", ErrInvalid, len(cfg.OrganizerEmails), MaxBureauMembers)
	}
	for _, email := range cfg.OrganizerEmails {
		if err := checkRequiredText("organizer email", email); err != nil {
			return err
		}
	}
	return checkBureau(cfg.Bureau)
}

func checkBureau(members []*fsmpb.BureauMember) error {
	if len(members) > MaxBureauMembers {
		return fmt.Errorf("%w: %d bureau members, at most %d", ErrInvalid, len(members), MaxBureauMembers)
	}
	for i, m := range members {
		if !bureauFunctions[m.Function] {
			return fmt.Errorf("%w: bureau member %d has function %q; want %s", ErrInvalid, i, m.Function, bureauFunctionsDoc)
		}
		if err := checkRequiredText("bureau member name", m.Name); err != nil {
			return err
		}
		if err := checkText("bureau member email", m.Email); err != nil {
			return err
		}
		if m.Phone != "" {
			if err := checkPhone(m.Phone); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPutScrutin(p *fsmpb.PutScrutin) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	sc := p.Scrutin
	if sc == nil {
		return fmt.Errorf("%w: no scrutin", ErrInvalid)
	}
	if err := checkID("scrutin id", sc.ScrutinId); err != nil {
		return err
	}
	if err := checkRequiredText("scrutin name", sc.Name); err != nil {
		return err
	}
	for _, list := range [][]string{sc.Composantes, sc.Colleges, sc.Secteurs} {
		if err := checkCriteria(list); err != nil {
			return err
		}
	}
	if share := sc.GetListRule().GetWomenSharePermille(); share > maxPermille {
		return fmt.Errorf("%w: share of women %d‰ is over 1000‰", ErrInvalid, share)
	}
	return nil
}

func checkCriteria(values []string) error {
	if len(values) > MaxCriteria {
		return fmt.Errorf("%w: %d values in one criterion, at most %d", ErrInvalid, len(values), MaxCriteria)
	}
	for _, v := range values {
		if err := checkRequiredText("assignment criterion", v); err != nil {
			return err
		}
	}
	return nil
}

func checkPutList(p *fsmpb.PutCandidateList) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	l := p.List
	if l == nil {
		return fmt.Errorf("%w: no candidate list", ErrInvalid)
	}
	if err := checkID("scrutin id", l.ScrutinId); err != nil {
		return err
	}
	if err := checkID("list id", l.ListId); err != nil {
		return err
	}
	if err := checkRequiredText("list name", l.Name); err != nil {
		return err
	}
	if n := len(l.Candidates); n == 0 || n > MaxCandidates {
		return fmt.Errorf("%w: list %q has %d candidates, want 1 to %d", ErrInvalid, l.ListId, n, MaxCandidates)
	}
	for i, c := range l.Candidates {
		if err := checkCandidate(c); err != nil {
			return fmt.Errorf("candidate %d of list %q: %w", i+1, l.ListId, err)
		}
	}
	return nil
}

func checkCandidate(c *fsmpb.Candidate) error {
	if err := checkRequiredText("candidate name", c.Name); err != nil {
		return err
	}
	if c.Sex != SexFemale && c.Sex != SexMale {
		return fmt.Errorf("%w: candidate sex %q, want %q or %q", ErrInvalid, c.Sex, SexFemale, SexMale)
	}
	return checkDate("candidate date of birth", c.DateOfBirth)
}

func checkSetKey(p *fsmpb.SetElectionKey) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	if n := len(p.PublicKey); n == 0 || n > MaxKeySize {
		return fmt.Errorf("%w: election public key of %d bytes, want 1 to %d", ErrInvalid, n, MaxKeySize)
	}
	if n := len(p.Policy); n > MaxKeySize {
		return fmt.Errorf("%w: key policy of %d bytes, at most %d", ErrInvalid, n, MaxKeySize)
	}
	return nil
}

func checkSeal(p *fsmpb.SealElection) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	return checkBuildDigest(p.BuildDigest, true)
}

func checkRecordTally(p *fsmpb.RecordTally) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	for _, d := range [][]byte{p.ResultsDigest, p.MinutesDigest} {
		if n := len(d); n == 0 || n > maxResultsDigest {
			return fmt.Errorf("%w: tally digest of %d bytes, want 1 to %d", ErrInvalid, n, maxResultsDigest)
		}
	}
	return nil
}

func checkIssue(p *fsmpb.IssueIdentifiers) error {
	if err := checkOptionalID("election id", p.ElectionId); err != nil {
		return err
	}
	if n := len(p.Seed); n != 0 && n != SeedSize {
		return fmt.Errorf("%w: seed of %d bytes, want %d", ErrInvalid, n, SeedSize)
	}
	if len(p.After) > TokenHashSize {
		return fmt.Errorf("%w: cursor of %d bytes", ErrInvalid, len(p.After))
	}
	return checkOptionalID("voter id", p.VoterId)
}

func checkOutboxDone(p *fsmpb.OutboxDone) error {
	return checkText("delivery detail", p.Detail)
}

func checkRecordLogin(p *fsmpb.RecordLogin) error {
	if err := checkID("identifier", p.Identifier); err != nil {
		return err
	}
	if !p.SecretOk && len(p.ChallengeHash) == 0 {
		return nil
	}
	return checkTokenHash("challenge", p.ChallengeHash)
}

func checkRequestOTP(p *fsmpb.RequestOTP) error {
	if err := checkTokenHash("challenge", p.ChallengeHash); err != nil {
		return err
	}
	if err := checkPhone(p.Phone); err != nil {
		return err
	}
	if len(p.RequestHash) > 0 {
		if err := checkTokenHash("request", p.RequestHash); err != nil {
			return err
		}
	}
	return checkCode(p.Code, true)
}

func checkVerifyOTP(p *fsmpb.VerifyOTP) error {
	if err := checkTokenHash("challenge", p.ChallengeHash); err != nil {
		return err
	}
	if err := checkTokenHash("session", p.SessionHash); err != nil {
		return err
	}
	if n := len(p.EnvelopeNonce); n != 0 && n != EnvelopeNonceSize {
		return fmt.Errorf("%w: envelope nonce of %d bytes, want %d", ErrInvalid, n, EnvelopeNonceSize)
	}
	return checkCode(p.Code, false)
}

// checkCode accepts six digits; before stamping a REQUEST_OTP has none.
func checkCode(code string, optional bool) error {
	if code == "" && optional {
		return nil
	}
	if len(code) != OTPDigits {
		return fmt.Errorf("%w: a one-time code has %d digits", ErrInvalid, OTPDigits)
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return fmt.Errorf("%w: a one-time code has digits only", ErrInvalid)
		}
	}
	return nil
}

// checkPhone accepts an international number: an optional '+' and 6 to 15 digits.
func checkPhone(phone string) error {
	digits := phone
	if len(digits) > 0 && digits[0] == '+' {
		digits = digits[1:]
	}
	ok := len(digits) >= minPhoneDigits && len(digits) <= maxPhoneDigits
	for _, r := range digits {
		ok = ok && r >= '0' && r <= '9'
	}
	if !ok {
		return fmt.Errorf("%w: phone number %q: want an optional + and %d to %d digits", ErrInvalid, phone, minPhoneDigits, maxPhoneDigits)
	}
	return nil
}

func checkUnlock(p *fsmpb.UnlockAccount) error {
	if err := checkID("voter id", p.VoterId); err != nil {
		return err
	}
	if len(p.Reason) > maxUnlockReason {
		return fmt.Errorf("%w: reason of %d bytes, at most %d", ErrInvalid, len(p.Reason), maxUnlockReason)
	}
	return checkRequiredText("unlock reason", p.Reason)
}

func checkRequiredText(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is missing", ErrInvalid, what)
	}
	return checkText(what, s)
}
