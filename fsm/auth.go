package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

// Sizes of the values the authentication path carries.
const (
	SeedSize          = 32
	TokenHashSize     = sha256.Size
	EnvelopeNonceSize = 16
	OTPDigits         = 6
	IdentifierLength  = 12
	// MaxIssuePerCommand bounds the voters one ISSUE_IDENTIFIERS command handles.
	MaxIssuePerCommand = 1000
)

// identifierAlphabet leaves out the letters and digits a reader confuses (I, O, 0, 1): 32
// symbols, 5 bits each, 60 bits per identifier.
const identifierAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// NormalizeIdentifier is how an identifier typed by a voter is compared: upper case, without
// spaces or dashes.
func NormalizeIdentifier(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// applyIssueIdentifiers gives voters a random login identifier, sent to their email through
// the outbox: every voter without one (a page at a time, from p.After), or one voter whose
// identifier is replaced. The identifiers derive from the leader-drawn seed.
func applyIssueIdentifiers(s *applyState, c *fsmpb.Command, p *fsmpb.IssueIdentifiers) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection(p.ElectionId)
	if err != nil {
		return nil, err
	}
	if err := requirePhase(e, PhaseSealed, PhaseOpen); err != nil {
		return nil, err
	}
	if len(p.Seed) != SeedSize {
		return nil, fmt.Errorf("%w: ISSUE_IDENTIFIERS carries no seed: it was not stamped", ErrInvalid)
	}
	if p.VoterId != "" {
		return s.reissueIdentifier(c, p)
	}
	result := &fsmpb.IssueResult{}
	cur := s.tx.Bucket(bucketVoters).Cursor()
	k, _ := cur.Seek(p.After)
	if k != nil && bytes.Equal(k, p.After) {
		k, _ = cur.Next()
	}
	for ; k != nil && result.Issued < uint64(limitOf(p)); k, _ = cur.Next() {
		issued, err := s.issueIfMissing(c, e, bytes.Clone(k), p.Seed)
		if err != nil {
			return nil, err
		}
		if issued {
			result.Issued++
		}
		result.Cursor = bytes.Clone(k)
	}
	if k == nil {
		result.Cursor = nil
	}
	return s.issueResponse(c, result, nil)
}

func limitOf(p *fsmpb.IssueIdentifiers) uint32 {
	if p.Limit == 0 || p.Limit > MaxIssuePerCommand {
		return MaxIssuePerCommand
	}
	return p.Limit
}

func (s *applyState) issueResponse(c *fsmpb.Command, result *fsmpb.IssueResult, subject []byte) (*fsmpb.Response, error) {
	result.Remaining = s.counters.Voters - s.counters.IdentifiersIssued
	if result.Issued > 0 {
		if err := s.journal(c, JournalIdentifiersIssued, subject, "%d identifiers issued, %d voters without one", result.Issued, result.Remaining); err != nil {
			return nil, err
		}
	}
	return &fsmpb.Response{Result: &fsmpb.Response_Issue{Issue: result}}, nil
}

func (s *applyState) issueIfMissing(c *fsmpb.Command, e *fsmpb.ElectionState, voterKey, seed []byte) (bool, error) {
	acc, err := s.account(voterKey)
	if err != nil || len(acc.LoginKey) > 0 {
		return false, err
	}
	s.counters.IdentifiersIssued++
	s.countersDirty = true
	return true, s.issue(c, e, voterKey, acc, seed)
}

// reissueIdentifier replaces one voter's identifier (lost email, rectified address); the old
// one stops working.
func (s *applyState) reissueIdentifier(c *fsmpb.Command, p *fsmpb.IssueIdentifiers) (*fsmpb.Response, error) {
	key := voterKeyWith(s.indexMAC(), p.VoterId)
	if s.tx.Bucket(bucketVoters).Get(key) == nil {
		return nil, fmt.Errorf("%w: the voter id is not on the roll of election %q", ErrUnknownVoter, s.election.ElectionId)
	}
	acc, err := s.account(key)
	if err != nil {
		return nil, err
	}
	if len(acc.LoginKey) == 0 {
		s.counters.IdentifiersIssued++
		s.countersDirty = true
	}
	if err := s.issue(c, s.election, key, acc, p.Seed); err != nil {
		return nil, err
	}
	return s.issueResponse(c, &fsmpb.IssueResult{Issued: 1}, key)
}

// issue draws the voter's identifier, indexes it and queues the email that carries it. A
// previous identifier is dropped only once the new one is drawn, so the two always differ.
func (s *applyState) issue(c *fsmpb.Command, e *fsmpb.ElectionState, voterKey []byte, acc *fsmpb.Account, seed []byte) error {
	v, _, err := s.voterRecord(voterKey)
	if err != nil {
		return err
	}
	identifier, loginKey := s.newIdentifier(seed, voterKey)
	if len(acc.LoginKey) > 0 {
		if err := s.tx.Bucket(bucketLogins).Delete(acc.LoginKey); err != nil {
			return storageErr("delete the previous login: %w", err)
		}
	}
	acc.LoginKey = loginKey
	if err := putMessage(s.tx, s.sealer, bucketAccounts, voterKey, acc); err != nil {
		return err
	}
	if err := putSealed(s.tx, s.sealer, bucketLogins, loginKey, voterKey); err != nil {
		return err
	}
	if v.GetEmail() == "" {
		return nil
	}
	return s.enqueue(c, ChannelEmail, v.Email, "Votre identifiant de vote : "+e.Name,
		fmt.Sprintf("Bonjour %s,\n\nVotre identifiant pour le vote « %s » est : %s\n\n"+
			"Connectez-vous avec cet identifiant et votre identifiant non trivial, puis le code reçu par SMS.\n",
			v.Name, e.Name, identifier))
}

// newIdentifier derives an identifier from the seed and the voter, drawing again on the rare
// collision with an identifier already in use.
func (s *applyState) newIdentifier(seed, voterKey []byte) (string, []byte) {
	mac := hmac.New(sha256.New, seed)
	for attempt := uint64(0); ; attempt++ {
		mac.Reset()
		mac.Write(voterKey)
		mac.Write(binary.BigEndian.AppendUint64(nil, attempt))
		sum := mac.Sum(nil)
		id := make([]byte, IdentifierLength)
		for i := range id {
			id[i] = identifierAlphabet[sum[i]&31]
		}
		loginKey := s.loginKey(string(id))
		if s.tx.Bucket(bucketLogins).Get(loginKey) == nil {
			return string(id), loginKey
		}
	}
}

func (s *applyState) loginKey(identifier string) []byte {
	return keyedHash(s.indexMAC(), "login", []byte(NormalizeIdentifier(identifier)))
}

func (s *applyState) account(voterKey []byte) (*fsmpb.Account, error) {
	acc := &fsmpb.Account{}
	_, err := getMessage(s.tx, s.sealer, bucketAccounts, voterKey, acc)
	return acc, err
}

// authPhase: voters log in once the election is sealed (to see their scrutins and lists) and
// until it closes.
func authPhase(e *fsmpb.ElectionState) error { return requirePhase(e, PhaseSealed, PhaseOpen) }

// applyRecordLogin records the outcome of a login the receiving node verified: a wrong secret
// counts a failure (the fifth locks the account); a right one opens a pending login under the
// challenge, which the one-time code completes.
func applyRecordLogin(s *applyState, c *fsmpb.Command, p *fsmpb.RecordLogin) (*fsmpb.Response, error) {
	e, err := s.authElection(c)
	if err != nil {
		return nil, err
	}
	voterKey, ok, err := getOpened(s.tx, s.sealer, bucketLogins, s.loginKey(p.Identifier))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no voter has this identifier", ErrAuthFailed)
	}
	acc, err := s.unlockedAccount(voterKey)
	if err != nil {
		return nil, err
	}
	if !p.SecretOk {
		if len(p.ChallengeHash) > 0 && bytes.Equal(acc.LastFailedLogin, p.ChallengeHash) {
			return authResponse(false, acc, 0, nil), nil // a retry: its failure is counted
		}
		acc.LastFailedLogin = p.ChallengeHash
		return s.recordFailure(c, voterKey, acc, JournalLoginFailed)
	}
	if resp, done, err := s.replayLogin(e, voterKey, acc, p.ChallengeHash); done || err != nil {
		return resp, err
	}
	acc.LastLoginUnixNano = c.StampedAtUnixNano
	if err := putMessage(s.tx, s.sealer, bucketAccounts, voterKey, acc); err != nil {
		return nil, err
	}
	pending := &fsmpb.Session{VoterKey: voterKey, CreatedAtUnixNano: c.StampedAtUnixNano}
	if err := putMessage(s.tx, s.sealer, bucketSessions, p.ChallengeHash, pending); err != nil {
		return nil, err
	}
	return authResponse(true, acc, c.StampedAtUnixNano+sessionTimeout(e), nil), nil
}

// replayLogin answers a retried login (same request id, so same challenge) with its pending
// login; any other use of an existing challenge is refused.
func (s *applyState) replayLogin(e *fsmpb.ElectionState, voterKey []byte, acc *fsmpb.Account, challenge []byte) (*fsmpb.Response, bool, error) {
	pending := &fsmpb.Session{}
	found, err := getMessage(s.tx, s.sealer, bucketSessions, challenge, pending)
	if err != nil || !found {
		return nil, false, err
	}
	if pending.Active || !bytes.Equal(pending.VoterKey, voterKey) {
		return nil, true, fmt.Errorf("%w: the challenge is already in use", ErrInvalid)
	}
	return authResponse(true, acc, pending.CreatedAtUnixNano+sessionTimeout(e), nil), true, nil
}

func (s *applyState) authElection(c *fsmpb.Command) (*fsmpb.ElectionState, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection("")
	if err != nil {
		return nil, err
	}
	return e, authPhase(e)
}

// unlockedAccount refuses a locked account: only an operator can unlock it.
func (s *applyState) unlockedAccount(voterKey []byte) (*fsmpb.Account, error) {
	acc, err := s.account(voterKey)
	if err != nil {
		return nil, err
	}
	if acc.Locked {
		return nil, fmt.Errorf("%w: the account was locked at %s after %d failed attempts; an operator must unlock it",
			ErrLocked, stamp(acc.LockedAtUnixNano), acc.Failures)
	}
	return acc, nil
}

// recordFailure counts a wrong secret or code; the MaxAuthFailures-th locks the account.
func (s *applyState) recordFailure(c *fsmpb.Command, voterKey []byte, acc *fsmpb.Account, kind string) (*fsmpb.Response, error) {
	acc.Failures++
	if acc.Failures >= MaxAuthFailures {
		acc.Locked, acc.LockedAtUnixNano = true, c.StampedAtUnixNano
	}
	if err := putMessage(s.tx, s.sealer, bucketAccounts, voterKey, acc); err != nil {
		return nil, err
	}
	if err := s.journal(c, kind, voterKey, "failure %d of %d", acc.Failures, MaxAuthFailures); err != nil {
		return nil, err
	}
	if acc.Locked {
		if err := s.journal(c, JournalAccountLocked, voterKey, "locked after %d failed attempts", acc.Failures); err != nil {
			return nil, err
		}
	}
	return authResponse(false, acc, 0, nil), nil
}

func authResponse(accepted bool, acc *fsmpb.Account, expires int64, nonce []byte) *fsmpb.Response {
	return &fsmpb.Response{Result: &fsmpb.Response_Auth{Auth: &fsmpb.AuthResult{
		Accepted: accepted, Failures: acc.GetFailures(), Locked: acc.GetLocked(), ExpiresAtUnixNano: expires, EnvelopeNonce: nonce,
	}}}
}

// pendingLogin returns the login awaiting its code under a challenge, if still valid.
func (s *applyState) pendingLogin(e *fsmpb.ElectionState, challenge []byte, now int64) (*fsmpb.Session, error) {
	pending := &fsmpb.Session{}
	found, err := getMessage(s.tx, s.sealer, bucketSessions, challenge, pending)
	if err != nil {
		return nil, err
	}
	if !found || pending.Active {
		return nil, fmt.Errorf("%w: no login awaits a code under this token (it was already used, or the login failed)", ErrOTPInvalid)
	}
	if now-pending.CreatedAtUnixNano > sessionTimeout(e) {
		return nil, fmt.Errorf("%w: the login of %s has expired; log in again", ErrSessionInvalid, stamp(pending.CreatedAtUnixNano))
	}
	return pending, nil
}

// applyRequestOTP draws (leader) a one-time code for a pending login, keeps only its keyed
// hash and validity, records the phone number, and queues the SMS.
func applyRequestOTP(s *applyState, c *fsmpb.Command, p *fsmpb.RequestOTP) (*fsmpb.Response, error) {
	e, err := s.authElection(c)
	if err != nil {
		return nil, err
	}
	if len(p.Code) != OTPDigits {
		return nil, fmt.Errorf("%w: REQUEST_OTP carries no code: it was not stamped", ErrInvalid)
	}
	pending, err := s.pendingLogin(e, p.ChallengeHash, c.StampedAtUnixNano)
	if err != nil {
		return nil, err
	}
	acc, err := s.unlockedAccount(pending.VoterKey)
	if err != nil {
		return nil, err
	}
	if len(p.RequestHash) > 0 && bytes.Equal(pending.OtpRequestHash, p.RequestHash) {
		return authResponse(true, acc, pending.OtpExpiresAtUnixNano, nil), nil // a retry: its code is sent
	}
	if pending.OtpSent >= maxCodesPerLogin {
		return nil, fmt.Errorf("%w: %d codes were already sent for this login; log in again", ErrNotAllowed, pending.OtpSent)
	}
	pending.OtpHash = s.otpHash(p.ChallengeHash, p.Code)
	pending.OtpExpiresAtUnixNano = c.StampedAtUnixNano + otpValidity(e)
	pending.OtpSent++
	pending.OtpRequestHash = p.RequestHash
	acc.Phone = p.Phone
	if err := putMessage(s.tx, s.sealer, bucketSessions, p.ChallengeHash, pending); err != nil {
		return nil, err
	}
	if err := putMessage(s.tx, s.sealer, bucketAccounts, pending.VoterKey, acc); err != nil {
		return nil, err
	}
	err = s.enqueue(c, ChannelSMS, p.Phone, "", fmt.Sprintf("Code de vote %s : %s (valable %d min, usage unique)",
		e.Name, p.Code, otpValidity(e)/60e9))
	if err != nil {
		return nil, err
	}
	return authResponse(true, acc, pending.OtpExpiresAtUnixNano, nil), nil
}

func (s *applyState) otpHash(challenge []byte, code string) []byte {
	return keyedHash(s.indexMAC(), "otp", challenge, []byte(code))
}

// applyVerifyOTP checks a one-time code: a wrong one counts a failure; an expired or used one
// is refused; the right one is spent and turns the pending login into an active session.
func applyVerifyOTP(s *applyState, c *fsmpb.Command, p *fsmpb.VerifyOTP) (*fsmpb.Response, error) {
	e, err := s.authElection(c)
	if err != nil {
		return nil, err
	}
	if len(p.EnvelopeNonce) != EnvelopeNonceSize {
		return nil, fmt.Errorf("%w: VERIFY_OTP carries no envelope nonce: it was not stamped", ErrInvalid)
	}
	if resp, done, err := s.replayVerify(e, p); done || err != nil {
		return resp, err
	}
	pending, err := s.pendingLogin(e, p.ChallengeHash, c.StampedAtUnixNano)
	if err != nil {
		return nil, err
	}
	acc, err := s.unlockedAccount(pending.VoterKey)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(pending.LastFailedVerify, p.SessionHash) {
		return authResponse(false, acc, 0, nil), nil // a retry: its failure is counted
	}
	if len(pending.OtpHash) == 0 {
		return nil, fmt.Errorf("%w: no code was asked for this login", ErrOTPInvalid)
	}
	if c.StampedAtUnixNano > pending.OtpExpiresAtUnixNano {
		return nil, fmt.Errorf("%w: the code expired at %s; ask for a new one", ErrOTPExpired, stamp(pending.OtpExpiresAtUnixNano))
	}
	if !hmac.Equal(pending.OtpHash, s.otpHash(p.ChallengeHash, p.Code)) {
		pending.LastFailedVerify = p.SessionHash
		if err := putMessage(s.tx, s.sealer, bucketSessions, p.ChallengeHash, pending); err != nil {
			return nil, err
		}
		return s.recordFailure(c, pending.VoterKey, acc, JournalCodeFailed)
	}
	return s.openSession(c, e, p, pending.VoterKey, acc)
}

// replayVerify answers a retried VERIFY_OTP (same request id, so same session hash) that
// opened its session: the session, with its nonce, as the first answer gave it.
func (s *applyState) replayVerify(e *fsmpb.ElectionState, p *fsmpb.VerifyOTP) (*fsmpb.Response, bool, error) {
	session := &fsmpb.Session{}
	found, err := getMessage(s.tx, s.sealer, bucketSessions, p.SessionHash, session)
	if err != nil || !found {
		return nil, false, err
	}
	if !session.Active || !bytes.Equal(session.ChallengeHash, p.ChallengeHash) {
		return nil, true, fmt.Errorf("%w: the session token is already in use", ErrInvalid)
	}
	acc, err := s.unlockedAccount(session.VoterKey)
	if err != nil {
		return nil, true, err
	}
	return authResponse(true, acc, session.LastSeenUnixNano+sessionTimeout(e), session.EnvelopeNonce), true, nil
}

func (s *applyState) openSession(c *fsmpb.Command, e *fsmpb.ElectionState, p *fsmpb.VerifyOTP, voterKey []byte, acc *fsmpb.Account) (*fsmpb.Response, error) {
	if s.tx.Bucket(bucketSessions).Get(p.SessionHash) != nil {
		return nil, fmt.Errorf("%w: the session token is already in use", ErrInvalid)
	}
	if err := s.tx.Bucket(bucketSessions).Delete(p.ChallengeHash); err != nil {
		return nil, storageErr("delete pending login: %w", err)
	}
	session := &fsmpb.Session{VoterKey: voterKey, Active: true, CreatedAtUnixNano: c.StampedAtUnixNano,
		LastSeenUnixNano: c.StampedAtUnixNano, EnvelopeNonce: p.EnvelopeNonce, ChallengeHash: p.ChallengeHash}
	if err := putMessage(s.tx, s.sealer, bucketSessions, p.SessionHash, session); err != nil {
		return nil, err
	}
	acc.Failures = 0
	if err := putMessage(s.tx, s.sealer, bucketAccounts, voterKey, acc); err != nil {
		return nil, err
	}
	if err := s.journal(c, JournalSessionOpened, voterKey, "identifier, secret and SMS code accepted"); err != nil {
		return nil, err
	}
	return authResponse(true, acc, c.StampedAtUnixNano+sessionTimeout(e), p.EnvelopeNonce), nil
}

// session returns an active session (not a pending login), live or not.
func (s *applyState) session(hash []byte) (*fsmpb.Session, error) {
	session := &fsmpb.Session{}
	found, err := getMessage(s.tx, s.sealer, bucketSessions, hash, session)
	if err != nil {
		return nil, err
	}
	if !found || !session.Active {
		return nil, fmt.Errorf("%w: unknown session; log in again", ErrSessionInvalid)
	}
	return session, nil
}

// checkLive refuses a session ended by inactivity, or whose account was locked since.
func (s *applyState) checkLive(e *fsmpb.ElectionState, session *fsmpb.Session, now int64) error {
	if idle := now - session.LastSeenUnixNano; idle > sessionTimeout(e) {
		return fmt.Errorf("%w: the session ended after %d s of inactivity; log in again", ErrSessionInvalid, sessionTimeout(e)/1e9)
	}
	_, err := s.unlockedAccount(session.VoterKey)
	return err
}

// applyUnlock lets an operator, and only an operator, unlock an account; it is journaled with
// the reason given.
func applyUnlock(s *applyState, c *fsmpb.Command, p *fsmpb.UnlockAccount) (*fsmpb.Response, error) {
	if err := requireStamp(c); err != nil {
		return nil, err
	}
	e, err := s.currentElection("")
	if err != nil {
		return nil, err
	}
	if c.GetActor().GetPrincipal() != ActorOperator {
		return nil, fmt.Errorf("%w: only an operator may unlock an account; this request came from %q", ErrNotAllowed, c.GetActor().GetPrincipal())
	}
	key := voterKeyWith(s.indexMAC(), p.VoterId)
	if s.tx.Bucket(bucketVoters).Get(key) == nil {
		return nil, fmt.Errorf("%w: the voter id is not on the roll of election %q", ErrUnknownVoter, e.ElectionId)
	}
	acc, err := s.account(key)
	if err != nil || !acc.Locked {
		return authResponse(true, acc, 0, nil), err
	}
	acc.Locked, acc.LockedAtUnixNano, acc.Failures = false, 0, 0
	if err := putMessage(s.tx, s.sealer, bucketAccounts, key, acc); err != nil {
		return nil, err
	}
	if err := s.journal(c, JournalAccountUnlocked, key, "unlocked: %s", p.Reason); err != nil {
		return nil, err
	}
	return authResponse(true, acc, 0, nil), nil
}
