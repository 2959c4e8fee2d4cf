package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/urne-vote/urne/fsm/fsmpb"
)

const phone = "+33612345678"

// sealedWithIdentifiers seals the legal election and issues identifiers to every voter.
func (h *harness) sealedWithIdentifiers() {
	h.t.Helper()
	h.draftLegal()
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	res := h.mustApply(typeIssue, &fsmpb.IssueIdentifiers{}).GetIssue()
	if res.Issued != 3 || res.Remaining != 0 {
		h.t.Fatalf("issue = %v", res)
	}
}

func TestIssueIdentifiersPageByPageAndReissue(t *testing.T) {
	h := newHarness(t)
	h.draftLegal()
	h.refusedLeavesNoTrace(typeIssue, &fsmpb.IssueIdentifiers{}, ErrWrongPhase)
	h.as(ActorBureau, func() { h.mustApply(typeSeal, &fsmpb.SealElection{BuildDigest: build}) })
	first := h.mustApply(typeIssue, &fsmpb.IssueIdentifiers{Limit: 2}).GetIssue()
	if first.Issued != 2 || first.Remaining != 1 || len(first.Cursor) == 0 {
		t.Fatalf("first page = %v", first)
	}
	second := h.mustApply(typeIssue, &fsmpb.IssueIdentifiers{Limit: 2, After: first.Cursor}).GetIssue()
	if second.Issued != 1 || second.Remaining != 0 || len(second.Cursor) != 0 {
		t.Fatalf("second page = %v", second)
	}
	if again := h.mustApply(typeIssue, &fsmpb.IssueIdentifiers{}).GetIssue(); again.Issued != 0 {
		t.Fatalf("issuing again = %v", again)
	}
	ids := map[string]bool{}
	for _, v := range []string{"alice", "bob", "carol"} {
		id := h.identifierOf(v)
		if ids[id] {
			t.Fatalf("identifier %s given twice", id)
		}
		ids[id] = true
	}
	old := h.identifierOf("alice")
	h.mustApply(typeIssue, &fsmpb.IssueIdentifiers{VoterId: "alice"})
	renewed := h.identifierOf("alice")
	if renewed == old {
		t.Fatal("reissue kept the old identifier")
	}
	if _, err := h.f.LookupLogin(old); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("old identifier still logs in: %v", err)
	}
	info, err := h.f.LookupLogin(strings.ToLower(renewed[:4]) + "-" + renewed[4:])
	if err != nil || !bytes.Equal(info.SecretHash, []byte(fakeBcrypt+"alice")) {
		t.Fatalf("lookup of the new identifier as typed by a voter: %v, %v", info, err)
	}
	if c := h.counts(); c.Voters != 3 {
		t.Fatalf("counts = %+v", c)
	}
}

func TestFullAuthenticationOpensASession(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	session, nonce := h.login("alice", phone)
	if len(nonce) != EnvelopeNonceSize || len(session) != TokenHashSize {
		t.Fatalf("session %x, nonce %x", session, nonce)
	}
	if sms := h.lastMessageTo(phone); sms.Channel != ChannelSMS || !strings.Contains(sms.Body, "valable 5 min") {
		t.Fatalf("sms = %v", sms)
	}
	wantJournalTail(t, h, JournalSessionOpened)
}

func wantJournalTail(t *testing.T, h *harness, kinds ...string) {
	t.Helper()
	got := actionsOf(detailedEntries(t, h))
	if len(got) < len(kinds) || strings.Join(got[len(got)-len(kinds):], "|") != strings.Join(kinds, "|") {
		t.Fatalf("the register ends with %v, want %v", got, kinds)
	}
}

func TestWrongSecretLocksAtFiveAndOnlyAnOperatorUnlocks(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	id := h.identifierOf("alice")
	for i := 1; i <= MaxAuthFailures; i++ {
		res := h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id}).GetAuth()
		if res.Accepted || res.Failures != uint32(i) || res.Locked != (i == MaxAuthFailures) {
			t.Fatalf("failure %d: %v", i, res)
		}
	}
	wantJournalTail(t, h, JournalLoginFailed, JournalAccountLocked)
	// Locked: the right secret is refused too, and the refusal changes nothing.
	right := &fsmpb.RecordLogin{Identifier: id, SecretOk: true, ChallengeHash: tokenHash("c")}
	wantMessage(t, h.refusedLeavesNoTrace(typeLogin, right, ErrLocked), "an operator must unlock it")
	h.refusedLeavesNoTrace(typeLogin, &fsmpb.RecordLogin{Identifier: id}, ErrLocked)
	if st, err := h.f.Account("alice"); err != nil || !st.Locked || st.Failures != MaxAuthFailures {
		t.Fatalf("account = %+v, %v", st, err)
	}
	for _, actor := range []string{ActorOrganizer, ActorBureau, ActorApp, ActorNode} {
		h.as(actor, func() {
			h.refusedLeavesNoTrace(typeUnlock, &fsmpb.UnlockAccount{VoterId: "alice", Reason: "called the hotline"}, ErrNotAllowed)
		})
	}
	h.as(ActorOperator, func() {
		h.mustApply(typeUnlock, &fsmpb.UnlockAccount{VoterId: "alice", Reason: "identity checked by phone"})
	})
	wantJournalTail(t, h, JournalAccountUnlocked)
	h.mustApply(typeLogin, right)
}

func TestCodeRulesExpiredReusedWrongAndTooMany(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	id := h.identifierOf("bob")
	challenge := tokenHash("bob's challenge")
	attempt := 0
	verify := func(code string) *fsmpb.VerifyOTP { // each attempt is a request of its own
		attempt++
		return &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: code, SessionHash: tokenHash(fmt.Sprintf("bob's session %d", attempt))}
	}
	// No login yet: no code can be asked for or checked.
	h.refusedLeavesNoTrace(typeOTP, &fsmpb.RequestOTP{ChallengeHash: challenge, Phone: phone}, ErrOTPInvalid)
	h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id, SecretOk: true, ChallengeHash: challenge})
	h.refusedLeavesNoTrace(typeVerify, verify("123456"), ErrOTPInvalid)
	h.mustApply(typeOTP, &fsmpb.RequestOTP{ChallengeHash: challenge, Phone: phone})
	code := h.codeSentTo(phone)
	// Expired: refused, nothing recorded.
	h.shift += DefaultOTPValidity + time.Second
	wantMessage(t, h.refusedLeavesNoTrace(typeVerify, verify(code), ErrOTPExpired), "ask for a new one")
	h.mustApply(typeOTP, &fsmpb.RequestOTP{ChallengeHash: challenge, Phone: phone})
	code = h.codeSentTo(phone)
	// Wrong: a failure is recorded, the code stays valid.
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if res := h.mustApply(typeVerify, verify(wrong)).GetAuth(); res.Accepted || res.Failures != 1 {
		t.Fatalf("wrong code = %v", res)
	}
	if res := h.mustApply(typeVerify, verify(code)).GetAuth(); !res.Accepted || res.Failures != 0 {
		t.Fatalf("right code = %v", res)
	}
	// Reused: the code was spent with the login.
	wantMessage(t, h.refusedLeavesNoTrace(typeVerify, verify(code), ErrOTPInvalid), "already used")
	// A fresh login may ask for three codes, not four.
	next := tokenHash("bob's second challenge")
	h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id, SecretOk: true, ChallengeHash: next})
	for range maxCodesPerLogin {
		h.mustApply(typeOTP, &fsmpb.RequestOTP{ChallengeHash: next, Phone: phone})
	}
	h.refusedLeavesNoTrace(typeOTP, &fsmpb.RequestOTP{ChallengeHash: next, Phone: phone}, ErrNotAllowed)
}

func TestWrongCodesCountTowardsTheLock(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	id := h.identifierOf("carol")
	for range MaxAuthFailures - 1 {
		h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id})
	}
	challenge := tokenHash("carol")
	h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id, SecretOk: true, ChallengeHash: challenge})
	h.mustApply(typeOTP, &fsmpb.RequestOTP{ChallengeHash: challenge, Phone: phone})
	code := h.codeSentTo(phone)
	wrong := "999999"
	if code == wrong {
		wrong = "888888"
	}
	res := h.mustApply(typeVerify, &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: wrong, SessionHash: tokenHash("s")}).GetAuth()
	if !res.Locked {
		t.Fatalf("fifth failure (a code) did not lock: %v", res)
	}
	h.refusedLeavesNoTrace(typeVerify, &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: code, SessionHash: tokenHash("s")}, ErrLocked)
}

func TestStampDrawsCodesSeedsAndNonces(t *testing.T) {
	for _, tc := range []struct {
		typ     fsmpb.CommandType
		payload proto.Message
	}{
		{typeOTP, &fsmpb.RequestOTP{Code: "000000"}},
		{typeVerify, &fsmpb.VerifyOTP{EnvelopeNonce: make([]byte, EnvelopeNonceSize)}},
		{typeIssue, &fsmpb.IssueIdentifiers{Seed: make([]byte, SeedSize)}},
	} {
		c := command(t, tc.typ, nil, 1)
		c.Payload, _ = marshalOptions.Marshal(tc.payload)
		if err := Stamp(c, baseTime, bytes.NewReader(bytes.Repeat([]byte{0xff, 0x10}, 64))); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(c.Payload, make([]byte, 8)) || bytes.Contains(c.Payload, []byte("000000")) {
			t.Fatalf("%s: the caller's value survived the stamp: %x", tc.typ, c.Payload)
		}
	}
	seen := map[string]bool{}
	for i := range 200 {
		code, err := drawCode(bytes.NewReader([]byte{byte(i), 0x20, byte(i * 7), 0x01}))
		if err != nil || len(code) != OTPDigits {
			t.Fatalf("code %q, %v", code, err)
		}
		seen[code] = true
	}
	if len(seen) < 190 {
		t.Fatalf("only %d distinct codes out of 200 draws", len(seen))
	}
}

func TestSessionEndsAfterInactivity(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	h.setClock(opensAt)
	h.as(ActorBureau, func() { h.mustApply(typeOpen, &fsmpb.Transition{BuildDigest: build}) })
	session, nonce := h.login("alice", phone)
	h.shift += DefaultSessionTimeout + time.Second
	c := &fsmpb.Cast{RequestId: "r1", SessionHash: session, ScrutinId: "ct", Ballot: []byte("inner"), EnvelopeNonce: nonce}
	wantMessage(t, h.refusedLeavesNoTrace(typeCast, c, ErrSessionInvalid), "inactivity")
}

// TestRetriedAuthStepsCountOnceAndSendOnce: a step retried with the same request id (the
// node derives the same challenge or session hash from it, and passes the request hash of a
// code request) counts no second failure, sends no second code, and finds the session the
// first attempt opened.
func TestRetriedAuthStepsCountOnceAndSendOnce(t *testing.T) {
	h := newHarness(t)
	h.sealedWithIdentifiers()
	id := h.identifierOf("bob")
	wrongLogin := &fsmpb.RecordLogin{Identifier: id, ChallengeHash: tokenHash("request 1")}
	for range 2 {
		if res := h.mustApply(typeLogin, wrongLogin).GetAuth(); res.Accepted || res.Failures != 1 {
			t.Fatalf("wrong secret, retried: %v", res)
		}
	}
	challenge := tokenHash("request 2")
	for range 2 {
		if res := h.mustApply(typeLogin, &fsmpb.RecordLogin{Identifier: id, SecretOk: true, ChallengeHash: challenge}).GetAuth(); !res.Accepted {
			t.Fatalf("right secret, retried: %v", res)
		}
	}
	sent := len(h.outbox())
	askCode := &fsmpb.RequestOTP{ChallengeHash: challenge, Phone: phone, RequestHash: tokenHash("request 3")}
	h.mustApply(typeOTP, askCode)
	code := h.codeSentTo(phone)
	h.mustApply(typeOTP, askCode)
	if n := len(h.outbox()); n != sent+1 || h.codeSentTo(phone) != code {
		t.Fatalf("a retried code request queued %d messages, want 1", n-sent)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	wrongCode := &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: wrong, SessionHash: tokenHash("request 4")}
	for range 2 {
		if res := h.mustApply(typeVerify, wrongCode).GetAuth(); res.Accepted || res.Failures != 2 {
			t.Fatalf("wrong code, retried: %v", res)
		}
	}
	right := &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: code, SessionHash: tokenHash("request 5")}
	first := h.mustApply(typeVerify, right).GetAuth()
	again := h.mustApply(typeVerify, right).GetAuth()
	if !first.Accepted || !again.Accepted || !bytes.Equal(first.EnvelopeNonce, again.EnvelopeNonce) {
		t.Fatalf("right code, retried: %v then %v", first, again)
	}
	// Another request with the spent code is no retry.
	h.refusedLeavesNoTrace(typeVerify, &fsmpb.VerifyOTP{ChallengeHash: challenge, Code: code, SessionHash: tokenHash("request 6")}, ErrOTPInvalid)
}
