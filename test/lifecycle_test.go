package test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/transport/urnepb"
)

// legalCluster is a three-node cluster running a civil-service election, with real SMTP
// and HTTP SMS servers (primaries down, so every message fails over to the backup), a
// shared leader clock, and test envelope and receipt keys.
type legalCluster struct {
	*harness.Cluster
	clock             *testClock
	mailPrimary, mail *mailbox
	smsPrimary, sms   *smsGateway
	device            voterDevice
	electionKey       *ballot.ElectionPrivateKey
	receiptKey        ed25519.PublicKey
	opensAt, closesAt time.Time
	organizer, bureau *client.Client
	app, operator     *client.Client
}

const smsToken = "gateway-token"

func startLegalCluster(t *testing.T) *legalCluster {
	t.Helper()
	lc := &legalCluster{clock: &testClock{}}
	lc.mailPrimary, lc.mail = startMailbox(t), startMailbox(t)
	lc.smsPrimary, lc.sms = startSMSGateway(t, smsToken), startSMSGateway(t, smsToken)
	lc.mailPrimary.failing.Store(true)
	lc.smsPrimary.failing.Store(true)
	key, err := ballot.GenerateElectionKey(ballot.SuiteHPKE)
	if err != nil {
		t.Fatal(err)
	}
	lc.electionKey = key
	c := harness.Prepare(t, "3")
	lc.device = newVoterDevice(t, c.Dir, key.Public())
	lc.receiptKey = receiptPublicKey(t, c.Dir)
	tokenFile := t.TempDir() + "/sms.token"
	writeFile(t, tokenFile, smsToken)
	c.Configure = func(_ string, cfg *node.Config) {
		cfg.SecretHashCost = 4
		cfg.Delivery = node.DeliveryConfig{
			Email: []node.SMTPConfig{{Addr: lc.mailPrimary.addr, From: "vote@example.org", TLS: node.SMTPPlain},
				{Addr: lc.mail.addr, From: "vote@example.org", TLS: node.SMTPPlain}},
			SMS: []node.SMSConfig{{URL: lc.smsPrimary.srv.URL, TokenFile: tokenFile}, {URL: lc.sms.srv.URL, TokenFile: tokenFile}},
		}
	}
	c.Options = lc.clock.Options
	for _, n := range c.File.Nodes {
		c.Start(n.ID)
	}
	c.WaitLeader()
	c.IssueClient("bureau")
	lc.Cluster = c
	lc.organizer, lc.bureau, lc.app, lc.operator = c.Client("organizer"), c.Client("bureau"), c.Client("app"), c.Client("operator")
	return lc
}

// voter of the test roll: the secret is its non-trivial identifier.
type voter struct{ id, college, secret, phone string }

var legalVoters = []voter{
	{"v1", "A", "1234", "+33600000001"},
	{"v2", "A", "5678", "+33600000002"},
	{"v3", "B", "9012", "+33600000003"},
}

// draft builds the election up to sealing: configuration, scrutin, list, key, roll.
func (lc *legalCluster) draft(t *testing.T) {
	t.Helper()
	ctx := harness.Context(t, time.Minute)
	lc.opensAt = lc.clock.Now().Add(time.Minute)
	lc.closesAt = lc.opensAt.Add(24 * time.Hour)
	must(t, "create", errOf(lc.organizer.CreateElectionProfile(ctx, "test-election", "CT 2026", client.ProfileCivilService)))
	must(t, "configure", errOf(lc.organizer.ConfigureElection(ctx, &urnepb.ElectionConfig{
		Organizer: "Le Cnam", Controller: "Le Cnam", Processor: "Urne hosting",
		OpensAtUnixNano: lc.opensAt.UnixNano(), ClosesAtUnixNano: lc.closesAt.UnixNano(),
		Bureau: []*urnepb.BureauMember{{Name: "Ada", Email: "president@example.org", Function: "president"}},
	})))
	must(t, "scrutin", errOf(lc.organizer.PutScrutin(ctx, &urnepb.Scrutin{ScrutinId: "ct", Name: "Comité technique", Colleges: []string{"A"}, Seats: 2,
		ListRule: &urnepb.ListRule{GenderBalance: true, WomenSharePermille: 500}})))
	must(t, "list", errOf(lc.organizer.PutCandidateList(ctx, &urnepb.CandidateList{ScrutinId: "ct", ListId: "L1", Name: "Liste 1",
		Candidates: []*urnepb.Candidate{{Name: "Alice", Sex: "F", DateOfBirth: "1970-01-01"}, {Name: "Bruno", Sex: "M", DateOfBirth: "1971-01-01"}}})))
	must(t, "key", errOf(lc.bureau.SetElectionKey(ctx, lc.electionKey.Public().MarshalPEM(), []byte("president and 2 of 3 delegates"))))
	var roll []*urnepb.Voter
	for _, v := range legalVoters {
		roll = append(roll, &urnepb.Voter{VoterId: v.id, Name: "Voter " + v.id, Email: v.id + "@example.org",
			DateOfBirth: "1980-01-01", Secret: v.secret, College: v.college})
	}
	must(t, "import", errOf(lc.organizer.ImportVoters(ctx, harness.Slice(roll))))
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// errOf keeps the error of a call that returns a value and an error.
func errOf[T any](_ T, err error) error { return err }

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

var (
	identifierInMail = regexp.MustCompile(`est : ([A-Z2-9]{12})`)
	codeInSMS        = regexp.MustCompile(`: ([0-9]{6}) `)
)

// identifier waits for the identifier mailed to a voter.
func (lc *legalCluster) identifier(t *testing.T, voterID string) string {
	t.Helper()
	var id string
	harness.Poll(t, 20*time.Second, func() error {
		m := identifierInMail.FindStringSubmatch(lc.mail.last(voterID + "@example.org"))
		if m == nil {
			return fmt.Errorf("no identifier mailed to %s yet", voterID)
		}
		id = m[1]
		return nil
	})
	return id
}

// code waits for the n-th SMS to a phone and returns its code.
func (lc *legalCluster) code(t *testing.T, phone string, n int) string {
	t.Helper()
	var code string
	harness.Poll(t, 20*time.Second, func() error {
		if lc.sms.count(phone) < n {
			return fmt.Errorf("%d SMS to %s, waiting for %d", lc.sms.count(phone), phone, n)
		}
		m := codeInSMS.FindStringSubmatch(lc.sms.last(phone))
		if m == nil {
			return fmt.Errorf("no code in %q", lc.sms.last(phone))
		}
		code = m[1]
		return nil
	})
	return code
}

// stopLeader stops the leader and waits for another; it returns the stopped node's id.
func (lc *legalCluster) stopLeader(t *testing.T) string {
	t.Helper()
	old := lc.WaitLeader()
	lc.Stop(old)
	if now := lc.WaitLeader(); now == old {
		t.Fatal("leadership did not move")
	}
	return old
}

func TestLegalElectionEndToEnd(t *testing.T) {
	lc := startLegalCluster(t)
	ctx := harness.Context(t, 3*time.Minute)
	lc.draft(t)

	// Sealing: only the bureau, and nothing changes afterwards.
	_, err := lc.organizer.SealElection(ctx)
	wantErr(t, "seal by the organizer", err, client.ErrNotAllowed)
	sealed, err := lc.bureau.SealElection(ctx)
	if err != nil || sealed.Phase != urnepb.ElectionPhase_PHASE_SEALED || len(sealed.Seal.GetDigest()) != 32 {
		t.Fatalf("seal: %v, %v", sealed, err)
	}
	_, err = lc.organizer.PutScrutin(ctx, &urnepb.Scrutin{ScrutinId: "cap", Name: "CAP"})
	wantErr(t, "scrutin after sealing", err, client.ErrSealed)
	_, err = lc.organizer.ImportVoters(ctx, harness.Slice([]*urnepb.Voter{{VoterId: "v9", Name: "Late", Email: "v9@example.org", DateOfBirth: "1990-01-01", Secret: "0000"}}))
	wantErr(t, "import after sealing", err, client.ErrSealed)
	harness.Poll(t, 20*time.Second, func() error {
		if msg := lc.mail.last("president@example.org"); !bytes.Contains([]byte(msg), []byte("scellé")) {
			return fmt.Errorf("no seal notification to the president yet")
		}
		return nil
	})

	// Identifiers by email, through the backup relay.
	if res, err := lc.organizer.IssueIdentifiers(ctx, ""); err != nil || res.Issued != 3 || res.Remaining != 0 {
		t.Fatalf("issue identifiers: %v, %v", res, err)
	}
	v1, v2, v3 := lc.identifier(t, "v1"), lc.identifier(t, "v2"), lc.identifier(t, "v3")
	if lc.mailPrimary.count() != 0 {
		t.Fatal("the failing primary relay took mail")
	}

	// Opening waits for the window, checked against the leader's clock.
	_, err = lc.bureau.OpenElection(ctx)
	wantErr(t, "open before the window", err, client.ErrOutsideWindow)
	lc.clock.Advance(2 * time.Minute)
	if _, err := lc.bureau.OpenElection(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}

	lc.lockSurvivesFailover(t, v1)
	session1 := lc.codeSurvivesFailover(t, v1, legalVoters[0])
	session2 := lc.expiredAndReusedCodes(t, v2, legalVoters[1])
	receipt := lc.castPath(t, session1, session2)
	lc.closesOnTime(t, session2, receipt)
	_ = v3
}

// lockSurvivesFailover: four wrong secrets, a leader stop, a fifth locks; the right secret
// is then refused until an operator unlocks.
func (lc *legalCluster) lockSurvivesFailover(t *testing.T, identifier string) {
	ctx := harness.Context(t, time.Minute)
	for i := 1; i <= 4; i++ {
		_, err := lc.app.Login(ctx, identifier, "0000")
		wantErr(t, fmt.Sprintf("wrong secret %d", i), err, client.ErrAuthFailed)
	}
	old := lc.stopLeader(t)
	_, err := lc.app.Login(ctx, identifier, "0000")
	wantErr(t, "fifth wrong secret after failover", err, client.ErrLocked)
	_, err = lc.app.Login(ctx, identifier, legalVoters[0].secret)
	wantErr(t, "right secret on a locked account", err, client.ErrLocked)
	lc.Start(old)
	_, err = lc.organizer.UnlockAccount(ctx, "v1", "asked by the organizer")
	wantErr(t, "unlock by the organizer", err, client.ErrPermissionDenied)
	st, err := lc.operator.UnlockAccount(ctx, "v1", "identity checked by phone")
	if err != nil || st.Locked || st.Failures != 0 {
		t.Fatalf("unlock by the operator: %v, %v", st, err)
	}
}

// codeSurvivesFailover: a code sent before a leader stop is still valid after it.
func (lc *legalCluster) codeSurvivesFailover(t *testing.T, identifier string, v voter) *urnepb.VerifyCodeResponse {
	ctx := harness.Context(t, time.Minute)
	login, err := lc.app.Login(ctx, identifier, v.secret)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := lc.app.RequestCode(ctx, login.ChallengeToken, v.phone); err != nil {
		t.Fatalf("request code: %v", err)
	}
	code := lc.code(t, v.phone, 1)
	old := lc.stopLeader(t)
	session, err := lc.app.VerifyCode(ctx, login.ChallengeToken, code)
	if err != nil {
		t.Fatalf("verify the code after failover: %v", err)
	}
	lc.Start(old)
	if lc.smsPrimary.count(v.phone) != 0 {
		t.Fatal("the failing primary gateway took an SMS")
	}
	return session
}

// expiredAndReusedCodes: an expired code is refused, a new one works once.
func (lc *legalCluster) expiredAndReusedCodes(t *testing.T, identifier string, v voter) *urnepb.VerifyCodeResponse {
	ctx := harness.Context(t, time.Minute)
	login, err := lc.app.Login(ctx, identifier, v.secret)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	must(t, "request code", errOf(lc.app.RequestCode(ctx, login.ChallengeToken, v.phone)))
	stale := lc.code(t, v.phone, 1)
	lc.clock.Advance(6 * time.Minute)
	_, err = lc.app.VerifyCode(ctx, login.ChallengeToken, stale)
	wantErr(t, "expired code", err, client.ErrCodeExpired)
	must(t, "request a new code", errOf(lc.app.RequestCode(ctx, login.ChallengeToken, v.phone)))
	code := lc.code(t, v.phone, 2)
	session, err := lc.app.VerifyCode(ctx, login.ChallengeToken, code)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	_, err = lc.app.VerifyCode(ctx, login.ChallengeToken, code)
	wantErr(t, "reused code", err, client.ErrCodeInvalid)
	return session
}

// castPath casts through envelopes, with the refusals of the legal path.
func (lc *legalCluster) castPath(t *testing.T, s1, s2 *urnepb.VerifyCodeResponse) *urnepb.Receipt {
	ctx := harness.Context(t, time.Minute)
	envelope, inner := lc.device.seal(t, s1.SessionId, s1.EnvelopeNonce, "L1")
	first, err := lc.app.CastSealed(ctx, "req-v1", s1.SessionToken, "ct", envelope)
	if err != nil {
		t.Fatalf("cast: %v", err)
	}
	r := first.Receipt
	receipt := ballot.Receipt{ElectionID: "test-election", Fingerprint: r.Fingerprint, EmargedAt: time.Unix(0, r.EmargedAtUnixNano)}
	if !bytes.Equal(r.Fingerprint, ballot.Fingerprint(inner)) || ballot.VerifyReceipt(lc.receiptKey, receipt, r.Signature) != nil {
		t.Fatalf("receipt %v is not the signed receipt of the inner ballot", r)
	}
	again, err := lc.app.CastSealed(ctx, "req-v1", s1.SessionToken, "ct", envelope)
	if err != nil || !again.Replayed || again.Receipt.EmargedAtUnixNano != r.EmargedAtUnixNano {
		t.Fatalf("retry: %v, %v", again, err)
	}
	second, _ := lc.device.seal(t, s1.SessionId, s1.EnvelopeNonce, "L1")
	_, err = lc.app.CastSealed(ctx, "req-v1-bis", s1.SessionToken, "ct", second)
	wantErr(t, "second cast", err, client.ErrAlreadyVoted)
	tampered := bytes.Clone(envelope)
	tampered[len(tampered)-1] ^= 1
	_, err = lc.app.CastSealed(ctx, "req-v2-t", s2.SessionToken, "ct", tampered)
	wantErr(t, "tampered envelope", err, client.ErrEnvelopeInvalid)
	stolen, _ := lc.device.seal(t, s1.SessionId, s1.EnvelopeNonce, "L1")
	_, err = lc.app.CastSealed(ctx, "req-v2-s", s2.SessionToken, "ct", stolen)
	wantErr(t, "envelope of another session", err, client.ErrEnvelopeInvalid)
	_, err = lc.app.Cast(ctx, "v2", []byte("opaque"))
	wantErr(t, "opaque cast in a legal election", err, client.ErrNotAllowed)
	var list []*urnepb.EmargementEntry
	err = lc.bureau.ExportEmargement(ctx, func(e *urnepb.EmargementEntry) error { list = append(list, e); return nil })
	if err != nil || len(list) != 1 || list[0].VoterId != "v1" || list[0].ScrutinId != "ct" || list[0].EmargedAtUnixNano != r.EmargedAtUnixNano {
		t.Fatalf("émargement list: %v, %v", list, err)
	}
	return r
}

// closesOnTime moves the clock past the closing time: the cluster closes by itself, records
// the box root, and takes no more ballots.
func (lc *legalCluster) closesOnTime(t *testing.T, s2 *urnepb.VerifyCodeResponse, receipt *urnepb.Receipt) {
	ctx := harness.Context(t, time.Minute)
	lc.clock.Advance(24 * time.Hour)
	var closed *urnepb.ElectionState
	harness.Poll(t, 20*time.Second, func() error {
		e, err := lc.bureau.GetElection(ctx)
		if err != nil || e.Phase != urnepb.ElectionPhase_PHASE_CLOSED {
			return fmt.Errorf("election %v, %v", e.GetPhase(), err)
		}
		closed = e
		return nil
	})
	if closed.ClosedBy != "deadline" || closed.ClosedAtUnixNano < lc.closesAt.UnixNano() {
		t.Fatalf("closed by %q at %d, want the deadline at or after %d", closed.ClosedBy, closed.ClosedAtUnixNano, lc.closesAt.UnixNano())
	}
	var fps [][]byte
	if err := lc.bureau.Fingerprints(ctx, func(fp []byte) error { fps = append(fps, fp); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Slice(fps, func(i, j int) bool { return bytes.Compare(fps[i], fps[j]) < 0 })
	if len(fps) != 1 || !bytes.Equal(fps[0], receipt.Fingerprint) || !bytes.Equal(closed.BoxRoot, merkleLeaf(fps[0])) {
		t.Fatalf("box %x with root %x does not match the receipt", fps, closed.BoxRoot)
	}
	late, _ := lc.device.seal(t, s2.SessionId, s2.EnvelopeNonce, "L1")
	_, err := lc.app.CastSealed(ctx, "req-late", s2.SessionToken, "ct", late)
	wantErr(t, "cast after close", err, client.ErrWrongPhase)
	lc.AssertSameState()
	for _, id := range lc.Running() {
		if rep, err := lc.Node(id).FSM().VerifyRegister(nil); err != nil || rep.Entries == 0 {
			t.Fatalf("register of %s: %+v, %v", id, rep, err)
		}
	}
}

func merkleLeaf(fp []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(fp)
	return h.Sum(nil)
}
