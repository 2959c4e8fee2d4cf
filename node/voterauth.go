package node

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Bounds of the bcrypt cost of voters' secrets.
const (
	defaultSecretHashCost = bcrypt.DefaultCost
	minSecretHashCost     = bcrypt.MinCost
	maxSecretHashCost     = bcrypt.MaxCost
	maxSecretLen          = 64
	tokenBytes            = 32
	pepperLabel           = "urne voter secret pepper v1"
	tokenLabel            = "urne voter token v1"
	maxRequestIDLen       = 128
)

// secrets hashes and checks the voters' non-trivial secrets. The pepper is derived from the
// election's gossip key, which every node holds outside its data directory: a copy of the
// state database alone does not allow a dictionary attack on the hashes.
type secrets struct {
	pepper   []byte
	tokenKey []byte // derives the tokens of requests that carry a request id
	cost     int
	dummy    []byte // a hash of the same cost, compared when the identifier is unknown
	sealed   *sealedSecrets
	slow     limiter // bounds the slow hashes computed at once
}

// limiter runs at most cap(l) functions at once; the others wait their turn.
type limiter chan struct{}

// newSlowHashLimiter leaves a core to raft, the network and the state machine: a burst of
// logins must not starve the node of the heartbeats that keep its leader.
func newSlowHashLimiter() limiter { return make(limiter, max(1, runtime.GOMAXPROCS(0)-1)) }

func (l limiter) do(fn func()) {
	l <- struct{}{}
	defer func() { <-l }()
	fn()
}

func newSecrets(gossipKey []byte, cost int) (*secrets, error) {
	if cost == 0 {
		cost = defaultSecretHashCost
	}
	pepper, err := hkdf.Key(sha256.New, gossipKey, nil, pepperLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the secret pepper: %w", err)
	}
	tokenKey, err := hkdf.Key(sha256.New, gossipKey, nil, tokenLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the token key: %w", err)
	}
	s := &secrets{pepper: pepper, tokenKey: tokenKey, cost: cost, slow: newSlowHashLimiter()}
	if s.sealed, err = newSealedSecrets(gossipKey); err != nil {
		return nil, err
	}
	if s.dummy, err = s.hash("no voter has this identifier"); err != nil {
		return nil, err
	}
	return s, nil
}

// peppered is what bcrypt sees: HMAC(pepper, secret), base64, within bcrypt's 72 bytes.
func (s *secrets) peppered(secret string) []byte {
	mac := hmac.New(sha256.New, s.pepper)
	mac.Write([]byte(strings.TrimSpace(secret)))
	return []byte(base64.RawStdEncoding.EncodeToString(mac.Sum(nil)))
}

func (s *secrets) hash(secret string) (hash []byte, err error) {
	s.slow.do(func() { hash, err = bcrypt.GenerateFromPassword(s.peppered(secret), s.cost) })
	return hash, err
}

// check compares in bcrypt's time whatever the outcome; without a hash (unknown identifier,
// voter without a secret) it compares against a dummy one, so that the answer takes as long.
func (s *secrets) check(hash []byte, secret string) (ok bool) {
	s.slow.do(func() { ok = s.compare(hash, secret) })
	return ok
}

func (s *secrets) compare(hash []byte, secret string) bool {
	if len(hash) == 0 {
		_ = bcrypt.CompareHashAndPassword(s.dummy, s.peppered(secret))
		return false
	}
	prepared, sealed, err := s.sealed.open(hash)
	switch {
	case err != nil:
		_ = bcrypt.CompareHashAndPassword(s.dummy, s.peppered(secret))
		return false
	case sealed:
		return bcrypt.CompareHashAndPassword(prepared, []byte(strings.TrimSpace(secret))) == nil
	}
	return bcrypt.CompareHashAndPassword(hash, s.peppered(secret)) == nil
}

// hashSecrets replaces every voter's plaintext secret by its hash, on all cores: the receiving
// node pays for the slow hash, never the state machine.
func (s *secrets) hashSecrets(plain []string, records []*fsmpb.VoterRecord) error {
	var wg sync.WaitGroup
	errs := make([]error, len(records))
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range work {
				records[i].SecretHash, errs[i] = s.hash(plain[i])
			}
		})
	}
	for i, p := range plain {
		if p != "" {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return joinProblems(errs)
}

// newToken returns a random token for the voter and the hash the cluster keeps of it.
func newToken() (string, []byte) {
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token)
}

// tokenFor is the token of a step: random without a request id; with one, derived from it
// (and from what the step continues and what it submits), so a retry on any node gets the
// same token, and the state machine recognizes the retry by its hash; the same request id
// with another secret or code gives another token, and counts as another attempt. Only nodes hold the key: the token stays
// unpredictable to whoever knows the request id alone.
func (s *secrets) tokenFor(step, requestID string, context ...string) (string, []byte) {
	if requestID == "" {
		return newToken()
	}
	mac := hmac.New(sha256.New, s.tokenKey)
	for _, part := range append([]string{step, requestID}, context...) {
		fmt.Fprintf(mac, "%d:%s", len(part), part)
	}
	token := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	return token, tokenHash(token)
}

func checkRequestID(id string) error {
	if len(id) > maxRequestIDLen {
		return fmt.Errorf("%w: request id of %d bytes; at most %d", fsm.ErrInvalid, len(id), maxRequestIDLen)
	}
	return nil
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// sessionID is what envelopes of a session are bound to: the hex of the token's hash, which
// the voter's device knows and the cluster can recompute, without the token itself.
func sessionID(token string) string { return hex.EncodeToString(tokenHash(token)) }

// Login verifies identifier and secret on this node, against the roll replicated here, and
// has the cluster record the outcome: a failure counts towards the lock.
func (s *electionService) Login(ctx context.Context, req *urnepb.LoginRequest) (*urnepb.LoginResponse, error) {
	if len(req.Identifier) > fsm.MaxIDSize || len(req.Secret) > maxSecretLen || req.Identifier == "" {
		return nil, toStatus(fmt.Errorf("%w: identifier and secret are 1 to %d and %d bytes", fsm.ErrInvalid, fsm.MaxIDSize, maxSecretLen))
	}
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	if err := s.n.ReadBarrier(ctx, urnepb.Consistency_CONSISTENCY_LINEARIZABLE); err != nil {
		return nil, toStatus(err)
	}
	identifier := fsm.NormalizeIdentifier(req.Identifier)
	info, err := s.n.fsm.LookupLogin(identifier)
	if errors.Is(err, fsm.ErrAuthFailed) {
		s.n.secrets.check(nil, req.Secret)
		return nil, s.authRefusal("login", err)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if info.Locked {
		return nil, s.authRefusal("login", fmt.Errorf("%w: an operator must unlock the account", fsm.ErrLocked))
	}
	ok := s.n.secrets.check(info.SecretHash, req.Secret)
	// The secret is part of the derivation: a request id reused with another secret is
	// another attempt, and counts.
	token, hash := s.n.secrets.tokenFor("challenge", req.RequestId, identifier, strings.TrimSpace(req.Secret))
	cmd := &fsmpb.RecordLogin{Identifier: identifier, SecretOk: ok, ChallengeHash: hash}
	resp, _, err := s.apply(ctx, fsmpb.CommandType_COMMAND_RECORD_LOGIN, cmd)
	if err != nil {
		return nil, s.authRefusal("login", err)
	}
	if err := rejected(resp.GetAuth(), "identifier or secret"); err != nil {
		return nil, s.authRefusal("login", err)
	}
	s.n.metrics.logins.WithLabelValues("login", "accepted").Inc()
	return &urnepb.LoginResponse{ChallengeToken: token, ExpiresAtUnixNano: resp.GetAuth().ExpiresAtUnixNano}, nil
}

// rejected turns a recorded failure into the error the voter sees.
func rejected(a *fsmpb.AuthResult, what string) error {
	switch {
	case a.GetAccepted():
		return nil
	case a.GetLocked():
		return fmt.Errorf("%w: wrong %s; after %d failures the account is locked and an operator must unlock it", fsm.ErrLocked, what, a.Failures)
	}
	return fmt.Errorf("%w: wrong %s; %d attempts left before the account locks", fsm.ErrAuthFailed, what, fsm.MaxAuthFailures-int(a.Failures))
}

func (s *electionService) authRefusal(step string, err error) error {
	s.n.metrics.logins.WithLabelValues(step, "refused").Inc()
	return toStatus(err)
}

// RequestCode has the leader draw a one-time code for a pending login and send it by SMS.
func (s *electionService) RequestCode(ctx context.Context, req *urnepb.RequestCodeRequest) (*urnepb.RequestCodeResponse, error) {
	phone := normalizePhone(req.Phone)
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	cmd := &fsmpb.RequestOTP{ChallengeHash: tokenHash(req.ChallengeToken), Phone: phone}
	if req.RequestId != "" {
		cmd.RequestHash = tokenHash(req.RequestId)
	}
	resp, _, err := s.apply(ctx, fsmpb.CommandType_COMMAND_REQUEST_OTP, cmd)
	if err != nil {
		return nil, s.authRefusal("code", err)
	}
	return &urnepb.RequestCodeResponse{ExpiresAtUnixNano: resp.GetAuth().ExpiresAtUnixNano}, nil
}

// normalizePhone drops the spaces, dots and dashes people type in phone numbers.
func normalizePhone(p string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '.' || r == '-' {
			return -1
		}
		return r
	}, p)
}

// VerifyCode checks the one-time code; the right one opens a voting session.
func (s *electionService) VerifyCode(ctx context.Context, req *urnepb.VerifyCodeRequest) (*urnepb.VerifyCodeResponse, error) {
	if err := checkRequestID(req.RequestId); err != nil {
		return nil, toStatus(err)
	}
	code := strings.TrimSpace(req.Code)
	token, hash := s.n.secrets.tokenFor("session", req.RequestId, req.ChallengeToken, code) // another code, another attempt
	resp, _, err := s.apply(ctx, fsmpb.CommandType_COMMAND_VERIFY_OTP,
		&fsmpb.VerifyOTP{ChallengeHash: tokenHash(req.ChallengeToken), Code: code, SessionHash: hash})
	if err != nil {
		return nil, s.authRefusal("verify", err)
	}
	a := resp.GetAuth()
	if err := rejected(a, "code"); err != nil {
		return nil, s.authRefusal("verify", err)
	}
	s.n.metrics.logins.WithLabelValues("verify", "accepted").Inc()
	return &urnepb.VerifyCodeResponse{SessionToken: token, SessionId: sessionID(token),
		EnvelopeNonce: a.EnvelopeNonce, ExpiresAtUnixNano: a.ExpiresAtUnixNano}, nil
}

// UnlockAccount unlocks a voter's account; the state machine checks that an operator asks.
func (s *electionService) UnlockAccount(ctx context.Context, req *urnepb.UnlockAccountRequest) (*urnepb.AccountStatus, error) {
	if _, _, err := s.apply(ctx, fsmpb.CommandType_COMMAND_UNLOCK_ACCOUNT,
		&fsmpb.UnlockAccount{VoterId: req.VoterId, Reason: req.Reason}); err != nil {
		return nil, err
	}
	return s.account(req.VoterId)
}

func (s *electionService) GetAccount(ctx context.Context, req *urnepb.GetAccountRequest) (*urnepb.AccountStatus, error) {
	if err := s.n.ReadBarrier(ctx, req.Consistency); err != nil {
		return nil, toStatus(err)
	}
	return s.account(req.VoterId)
}

func (s *electionService) account(voterID string) (*urnepb.AccountStatus, error) {
	st, err := s.n.fsm.Account(voterID)
	if err != nil {
		return nil, toStatus(err)
	}
	return &urnepb.AccountStatus{VoterId: voterID, HasIdentifier: st.HasIdentifier, Failures: st.Failures,
		Locked: st.Locked, LockedAtUnixNano: st.LockedAtUnixNano}, nil
}

// IssueIdentifiers walks the roll a page at a time until every voter has an identifier.
func (s *electionService) IssueIdentifiers(ctx context.Context, req *urnepb.IssueIdentifiersRequest) (*urnepb.IssueIdentifiersResponse, error) {
	out := &urnepb.IssueIdentifiersResponse{}
	var after []byte
	for {
		resp, _, err := s.apply(ctx, fsmpb.CommandType_COMMAND_ISSUE_IDENTIFIERS,
			&fsmpb.IssueIdentifiers{VoterId: req.VoterId, After: after, Limit: fsm.MaxIssuePerCommand})
		if err != nil {
			return nil, err
		}
		r := resp.GetIssue()
		out.Issued += r.Issued
		out.Remaining = r.Remaining
		if req.VoterId != "" || len(r.Cursor) == 0 {
			return out, nil
		}
		after = r.Cursor
	}
}
