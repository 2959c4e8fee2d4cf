package test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/test/harness"
	"github.com/urne-vote/urne/test/mailtest"
	"github.com/urne-vote/urne/transport/urnepb"
)

// A civil-service election over real `urne server` processes, from the roll to the verified
// minutes: the ceremony and the tally run as the bureau would run them, through the binary.
// The binary is built with -tags failpoints (or taken from URNE_FAILPOINTS_BIN) for one
// reason: the decrees' window is 24 hours at least, and the test moves the nodes' stamping
// clock past the opening and closing times with the clock/offset failpoint (through the Chaos service of a
// chaos-enabled cluster). No production build can do either.

var (
	fpBuildOnce sync.Once
	fpBin       string
	fpBuildErr  error
)

func failpointBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("URNE_FAILPOINTS_BIN"); bin != "" {
		return bin
	}
	fpBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "urne-fp-bin-")
		if err != nil {
			fpBuildErr = err
			return
		}
		fpBin = filepath.Join(dir, "urne")
		out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", fpBin, "../cmd/urne").CombinedOutput()
		if err != nil {
			fpBuildErr = fmt.Errorf("go build -tags failpoints: %v\n%s", err, out)
		}
	})
	if fpBuildErr != nil {
		t.Fatal(fpBuildErr)
	}
	return fpBin
}

// electionProcs is a three-node cluster of processes with an SMTP server and an SMS gateway
// on loopback, and the files of the bureau (ceremony, passphrases).
type electionProcs struct {
	*procCluster
	mail     *mailtest.Server
	sms      *smsGateway
	work     string // the bureau's folder: ceremony, passphrases, minutes
	ceremony string
	passDir  string
	app      *client.Client
	device   voterDevice
}

func startElectionProcs(t *testing.T) *electionProcs {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process cluster: skipped with -short")
	}
	e := &electionProcs{procCluster: &procCluster{t: t, bin: failpointBinary(t), dir: filepath.Join(t.TempDir(), "cluster")},
		mail: mailtest.Start(t), sms: startSMSGateway(t, smsToken), work: t.TempDir()}
	if _, err := cluster.Init(cluster.Options{ElectionID: "cnam-2026", Topology: "3", Out: e.dir,
		Host: harness.LoopbackHost(), Profile: node.ProfileLAN, Chaos: true}); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(e.work, "sms.token")
	writeFile(t, tokenFile, smsToken)
	for _, n := range e.file().Nodes {
		path := cluster.NodeConfigPath(e.dir, n.ID)
		cfg, err := node.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg.SecretHashCost = 4
		cfg.Delivery = node.DeliveryConfig{
			Email: []node.SMTPConfig{{Addr: e.mail.Addr, From: "vote@example.org", TLS: node.SMTPPlain}},
			SMS:   []node.SMSConfig{{URL: e.sms.srv.URL, TokenFile: tokenFile}},
		}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		writeFile(t, path, string(b))
	}
	t.Cleanup(func() {
		if out, err := e.run("dev", "down", "--dir", e.dir); err != nil {
			t.Logf("dev down: %v\n%s", err, out)
		}
		if t.Failed() {
			e.dumpLogs()
		}
	})
	e.cli(0, "dev", "up", "--dir", e.dir)
	e.cli(0, "cluster", "issue-client", "--dir", e.dir, "--role", "bureau")
	e.app = e.client("app")
	return e
}

// cli runs the binary and fails the test unless it exits with want; it returns stdout and stderr.
func (e *electionProcs) cli(want int, args ...string) (string, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		e.t.Fatalf("urne %v: %v", args, err)
	}
	if code != want {
		e.t.Fatalf("urne %v exited %d, want %d\nstdout: %s\nstderr: %s", args, code, want, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

// The roll: college A votes in scrutin ct, college B in cap.
var systemVoters = func() []voter {
	var vs []voter
	for i := range 10 {
		college := "A"
		if i%3 == 2 {
			college = "B"
		}
		vs = append(vs, voter{id: fmt.Sprintf("agent-%02d", i), college: college,
			secret: fmt.Sprintf("%04d", 1000+i*7), phone: fmt.Sprintf("+336100000%02d", i)})
	}
	return vs
}()

func scrutinOf(v voter) string {
	if v.college == "B" {
		return "cap"
	}
	return "ct"
}

const systemPolicy = "and(or(president, deputy), 2-of(delegate-a, delegate-b, delegate-c))\n"

// keyCeremony runs `urne keys ceremony` with cheap argon2id parameters.
func (e *electionProcs) keyCeremony() {
	e.ceremony, e.passDir = filepath.Join(e.work, "ceremony"), filepath.Join(e.work, "pass")
	holders := `[{"name":"president","role":"president"},{"name":"deputy","role":"deputy"},{"name":"secretary","role":"secretary"},
	 {"name":"delegate-a","role":"delegate"},{"name":"delegate-b","role":"delegate"},{"name":"delegate-c","role":"delegate"}]`
	if err := os.MkdirAll(e.passDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	for _, n := range []string{"president", "deputy", "secretary", "delegate-a", "delegate-b", "delegate-c"} {
		writeFile(e.t, filepath.Join(e.passDir, n), "passphrase of "+n+"\n")
	}
	writeFile(e.t, filepath.Join(e.work, "policy.txt"), systemPolicy)
	writeFile(e.t, filepath.Join(e.work, "holders.json"), holders)
	e.cli(0, "keys", "ceremony", "--election", "cnam-2026", "--suites", "hpke", "--policy", filepath.Join(e.work, "policy.txt"),
		"--holders", filepath.Join(e.work, "holders.json"), "--out", e.ceremony, "--passphrase-dir", e.passDir,
		"--kdf-time", "1", "--kdf-memory-kib", "64", "--kdf-threads", "1")
	pemText, err := os.ReadFile(filepath.Join(e.ceremony, "election-public.pem"))
	if err != nil {
		e.t.Fatal(err)
	}
	pubs, err := ballot.ParseElectionPublicKeys(pemText)
	if err != nil || len(pubs) != 1 {
		e.t.Fatalf("election keys of the ceremony: %d, %v", len(pubs), err)
	}
	e.device = newVoterDevice(e.t, e.dir, pubs[0])
}

// draft creates and configures the election with a window opening in opensIn, files the
// scrutins and lists, records the ceremony's key (CLI) and imports the roll (CLI, CSV).
func (e *electionProcs) draft(opensIn time.Duration) {
	t := e.t
	ctx := harness.Context(t, 2*time.Minute)
	org := e.client("organizer")
	opensAt := time.Now().Add(opensIn)
	must(t, "create", errOf(org.CreateElectionProfile(ctx, "cnam-2026", "Élections professionnelles 2026", client.ProfileCivilService)))
	must(t, "configure", errOf(org.ConfigureElection(ctx, &urnepb.ElectionConfig{
		Organizer: "Le Cnam", Controller: "Le Cnam", Processor: "Urne hosting",
		OpensAtUnixNano: opensAt.UnixNano(), ClosesAtUnixNano: opensAt.Add(24 * time.Hour).UnixNano(),
		Bureau: []*urnepb.BureauMember{{Name: "Claire", Email: "president@example.org", Function: "president"}},
	})))
	for _, sc := range []struct{ id, college string }{{"ct", "A"}, {"cap", "B"}} {
		must(t, "scrutin", errOf(org.PutScrutin(ctx, &urnepb.Scrutin{ScrutinId: sc.id, Name: "Scrutin " + sc.id, Colleges: []string{sc.college}, Seats: 2})))
		for _, l := range []string{"L1", "L2"} {
			must(t, "list", errOf(org.PutCandidateList(ctx, &urnepb.CandidateList{ScrutinId: sc.id, ListId: l, Name: "Liste " + l,
				Candidates: []*urnepb.Candidate{{Name: l + " Alice", Sex: "F", DateOfBirth: "1970-01-01"}, {Name: l + " Bruno", Sex: "M", DateOfBirth: "1971-01-01"}}})))
		}
	}
	e.cli(0, "election", "key", "--cluster", e.dir, "--public-key", filepath.Join(e.ceremony, "election-public.pem"),
		"--policy", filepath.Join(e.work, "policy.txt"))
	var roll strings.Builder
	roll.WriteString("voter_id,name,email,date_of_birth,secret,college\n")
	for i, v := range systemVoters {
		fmt.Fprintf(&roll, "%s,Agent %d,%s@example.org,1980-01-%02d,%s,%s\n", v.id, i, v.id, i+1, v.secret, v.college)
	}
	writeFile(t, filepath.Join(e.work, "roll.csv"), roll.String())
	e.cli(0, "election", "import", "--cluster", e.dir, "--file", filepath.Join(e.work, "roll.csv"))
}

var (
	systemIdentifier = regexp.MustCompile(`est : ([A-Z2-9]{12})`)
	systemCode       = regexp.MustCompile(`: ([0-9]{6}) `)
)

// mailedIdentifier waits for the identifier mailed to a voter by the SMTP relay.
func (e *electionProcs) mailedIdentifier(v voter) string {
	var id string
	harness.Poll(e.t, 30*time.Second, func() error {
		for _, m := range e.mail.Messages() {
			if len(m.To) == 1 && m.To[0] == v.id+"@example.org" {
				if got := systemIdentifier.FindStringSubmatch(m.Data); got != nil {
					id = got[1]
					return nil
				}
			}
		}
		return fmt.Errorf("no identifier mailed to %s yet", v.id)
	})
	return id
}

// session authenticates a voter as the voters' site would: identifier (from the email) and
// secret, then the code received by SMS.
func (e *electionProcs) session(ctx context.Context, v voter) *urnepb.VerifyCodeResponse {
	t := e.t
	login, err := e.app.Login(ctx, e.mailedIdentifier(v), v.secret)
	if err != nil {
		t.Fatalf("login of %s: %v", v.id, err)
	}
	must(t, "request code", errOf(e.app.RequestCode(ctx, login.ChallengeToken, v.phone)))
	var code string
	harness.Poll(t, 30*time.Second, func() error {
		m := systemCode.FindStringSubmatch(e.sms.last(v.phone))
		if m == nil {
			return fmt.Errorf("no code sent to %s yet", v.phone)
		}
		code = m[1]
		return nil
	})
	s, err := e.app.VerifyCode(ctx, login.ChallengeToken, code)
	if err != nil {
		t.Fatalf("verify code of %s: %v", v.id, err)
	}
	return s
}

// cast seals a vote on the voter's device and casts it; the client retries an unknown
// outcome with the same request id.
func (e *electionProcs) cast(ctx context.Context, v voter, s *urnepb.VerifyCodeResponse, list string) (*urnepb.Receipt, error) {
	inner, err := ballot.SealBallot(e.device.election, ballot.Vote{Scrutin: scrutinOf(v), List: list})
	if err != nil {
		return nil, err
	}
	envelope, err := ballot.SealEnvelope(e.device.envelope, s.SessionId, s.EnvelopeNonce, inner)
	if err != nil {
		return nil, err
	}
	r, err := e.app.CastSealed(ctx, "cast-"+v.id+"-"+client.NewRequestID(), s.SessionToken, scrutinOf(v), envelope)
	if err != nil {
		return nil, fmt.Errorf("cast of %s: %w", v.id, err)
	}
	if !bytes.Equal(r.Receipt.Fingerprint, ballot.Fingerprint(inner)) {
		return nil, fmt.Errorf("receipt of %s names %x, not its ballot", v.id, r.Receipt.Fingerprint)
	}
	return r.Receipt, nil
}

// armClock moves the stamping clock of every running node by offset.
func (e *electionProcs) armClock(offset time.Duration) {
	ctx := harness.Context(e.t, time.Minute)
	op := e.client("operator")
	for _, n := range e.file().Nodes {
		_, err := op.ChaosInject(ctx, n.GRPC, &urnepb.ChaosFault{Kind: "failpoint", Failpoint: "clock/offset", Spec: fmt.Sprintf("offset(%s)", offset)})
		if err != nil && e.running(n.ID) {
			e.t.Fatalf("arm the clock of %s: %v", n.ID, err)
		}
	}
}

func (e *electionProcs) running(id string) bool {
	pids, err := e.pids()
	return err == nil && pids[id] != 0
}

func TestSystemCivilServiceElection(t *testing.T) {
	e := startElectionProcs(t)
	e.keyCeremony()
	// The window opens in ten minutes by the wall clock; the bureau seals before that, then the
	// nodes' stamping clocks move past the opening.
	const opensIn = 10 * time.Minute
	e.draft(opensIn)
	ctx := harness.Context(t, 5*time.Minute)
	e.cli(0, "election", "seal", "--cluster", e.dir)
	e.cli(0, "election", "issue-identifiers", "--cluster", e.dir)
	harness.Poll(t, 30*time.Second, func() error { _, err := e.mail.Find("president@example.org"); return err })
	_, err := e.client("bureau").OpenElection(ctx)
	wantErr(t, "open before the window", err, client.ErrOutsideWindow)
	e.armClock(opensIn + time.Minute)
	must(t, "open", errOf(e.client("bureau").OpenElection(ctx)))

	sessions := make([]*urnepb.VerifyCodeResponse, len(systemVoters))
	for i, v := range systemVoters {
		sessions[i] = e.session(ctx, v)
	}
	receipts := e.castThroughLeaderKill(ctx, sessions)
	_, err = e.cast(ctx, systemVoters[0], sessions[0], "L2")
	wantErr(t, "second cast", err, client.ErrAlreadyVoted)

	// The window closes by the leader's tick once its clock passes the closing time.
	e.armClock(opensIn + 24*time.Hour + 2*time.Minute)
	var closed *urnepb.ElectionState
	harness.Poll(t, time.Minute, func() error {
		st, err := e.app.GetElection(ctx)
		if err != nil || st.Phase != urnepb.ElectionPhase_PHASE_CLOSED {
			return fmt.Errorf("election %v, %v", st.GetPhase(), err)
		}
		closed = st
		return nil
	})
	if closed.ClosedBy != "deadline" {
		t.Fatalf("closed by %q, want the deadline", closed.ClosedBy)
	}
	late := len(systemVoters) - 1
	_, err = e.cast(ctx, systemVoters[late], sessions[late], "L1")
	wantErr(t, "cast after close", err, client.ErrWrongPhase)

	// A tally with fragments that do not satisfy the policy changes nothing.
	out := filepath.Join(e.work, "tally")
	_, stderr := e.cli(1, "tally", "--cluster", e.dir, "--out", filepath.Join(e.work, "refused"), "--passphrase-dir", e.passDir,
		"--fragments", e.fragment("delegate-a")+","+e.fragment("delegate-b"), "--ceremony", filepath.Join(e.ceremony, "ceremony.json"))
	if !strings.Contains(stderr, "or(president, deputy)") {
		t.Fatalf("tally by two delegates: %s", stderr)
	}
	if st, _ := e.app.GetElection(ctx); st.GetPhase() != urnepb.ElectionPhase_PHASE_CLOSED {
		t.Fatalf("a refused tally moved the election to %v", st.GetPhase())
	}

	report := e.tally(out, "recorded")
	e.checkMinutes(out, report, receipts, closed)
	if again := e.tally(filepath.Join(e.work, "tally-again"), "already"); again.ResultsDigest != report.ResultsDigest {
		t.Fatalf("the re-run gives results %s, the first run %s", again.ResultsDigest, report.ResultsDigest)
	}
	st, err := e.app.GetElection(ctx)
	if err != nil || st.Phase != urnepb.ElectionPhase_PHASE_TALLIED || hex.EncodeToString(st.ResultsDigest) != report.ResultsDigest {
		t.Fatalf("after the tally: %v, %v", st, err)
	}
	e.archive(ctx, out)
}

// archive seals the tallied election's archive with the tally's minutes, recorded results and
// decrypted ballots, verifies it offline, and finds the decrypted ballots in it unchanged.
func (e *electionProcs) archive(ctx context.Context, tallyDir string) {
	t := e.t
	file := filepath.Join(e.work, "election.urnearch")
	e.cli(0, "archive", "create", "--cluster", e.dir, "--out", file, "--minutes", filepath.Join(tallyDir, "pv.json"),
		"--results", filepath.Join(tallyDir, "results.json"), "--attach", filepath.Join(tallyDir, "votes.jsonl"))
	extracted := filepath.Join(e.work, "archive")
	e.cli(0, "archive", "verify", file, "--cluster", e.dir, "--extract", extracted)
	want, err := os.ReadFile(filepath.Join(tallyDir, "votes.jsonl"))
	if err != nil || len(want) == 0 {
		t.Fatalf("the tally wrote no decrypted ballots: %v", err)
	}
	found := false
	err = filepath.WalkDir(extracted, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(path) == "votes.jsonl" {
			got, rerr := os.ReadFile(path)
			found = rerr == nil && bytes.Equal(got, want)
		}
		return err
	})
	if err != nil || !found {
		t.Fatalf("the archive holds no copy of the decrypted ballots (%v)", err)
	}
	if st, err := e.app.GetElection(ctx); err != nil || st.Phase != urnepb.ElectionPhase_PHASE_ARCHIVED {
		t.Fatalf("after archive create: %v, %v", st, err)
	}
}

// castThroughLeaderKill casts the ballot of every voter but the last (who comes too late), SIGKILLing the leader once a third are in,
// while the rest are under way; then restarts it. It returns the receipts in roll order.
func (e *electionProcs) castThroughLeaderKill(ctx context.Context, sessions []*urnepb.VerifyCodeResponse) []*urnepb.Receipt {
	t := e.t
	voting := len(systemVoters) - 1
	receipts := make([]*urnepb.Receipt, voting)
	lists := []string{"L1", "L2", "L1"}
	first := voting / 3
	for i := range first {
		r, err := e.cast(ctx, systemVoters[i], sessions[i], lists[i%3])
		must(t, "cast", err)
		receipts[i] = r
	}
	leader := e.leader(ctx, e.app)
	var wg sync.WaitGroup
	errs := make([]error, voting)
	for i := first; i < voting; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			receipts[i], errs[i] = e.cast(ctx, systemVoters[i], sessions[i], lists[i%3])
		}()
	}
	e.cli(0, "dev", "kill", "--dir", e.dir, "--node", leader)
	wg.Wait()
	must(t, "casts across the leader kill", errors.Join(errs...))
	harness.Poll(t, time.Minute, func() error {
		now, err := e.app.Leader(ctx)
		if err != nil || now.ID == "" || now.ID == leader {
			return fmt.Errorf("leader %q after the kill of %s: %v", now.ID, leader, err)
		}
		return nil
	})
	e.cli(0, "dev", "start", "--dir", e.dir, "--node", leader)
	return receipts
}

func (e *electionProcs) fragment(name string) string {
	return filepath.Join(e.ceremony, "fragments", name+".json")
}

type systemTallyReport struct {
	Result struct {
		Ballots   int    `json:"ballots"`
		BoxDigest string `json:"box_digest"`
		Scrutins  []struct {
			ID          string `json:"id"`
			Ballots     int    `json:"ballots"`
			Emargements *int   `json:"emargements"`
			Lists       []struct {
				ID    string `json:"id"`
				Votes int    `json:"votes"`
			} `json:"lists"`
		} `json:"scrutins"`
	} `json:"result"`
	ResultsDigest string `json:"results_digest"`
	Recorded      string `json:"recorded"`
}

// tally runs `urne tally` with the president's and two delegates' fragments.
func (e *electionProcs) tally(out, wantRecorded string) systemTallyReport {
	stdout, _ := e.cli(0, "tally", "--cluster", e.dir, "-o", "json", "--out", out, "--passphrase-dir", e.passDir,
		"--fragments", strings.Join([]string{e.fragment("president"), e.fragment("delegate-a"), e.fragment("delegate-c")}, ","),
		"--ceremony", filepath.Join(e.ceremony, "ceremony.json"), "--signatories", "president,secretary")
	var r systemTallyReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		e.t.Fatalf("tally report %q: %v", stdout, err)
	}
	if r.Recorded != wantRecorded {
		e.t.Fatalf("tally recorded %q, want %q", r.Recorded, wantRecorded)
	}
	return r
}

// checkMinutes checks the count against the votes cast, signs and verifies the minutes, and
// checks every receipt against the published fingerprints and box digest.
func (e *electionProcs) checkMinutes(out string, r systemTallyReport, receipts []*urnepb.Receipt, closed *urnepb.ElectionState) {
	t := e.t
	want := map[string]map[string]int{"ct": {}, "cap": {}}
	lists := []string{"L1", "L2", "L1"}
	for i, v := range systemVoters[:len(receipts)] {
		want[scrutinOf(v)][lists[i%3]]++
	}
	if r.Result.Ballots != len(receipts) || r.Result.BoxDigest != hex.EncodeToString(closed.BoxRoot) {
		t.Fatalf("tally of %d ballots with box digest %s; want %d and the root recorded at close %x", r.Result.Ballots, r.Result.BoxDigest, len(receipts), closed.BoxRoot)
	}
	for _, sc := range r.Result.Scrutins {
		if sc.Emargements == nil || *sc.Emargements != sc.Ballots {
			t.Fatalf("scrutin %s: %d ballots, émargements %v", sc.ID, sc.Ballots, sc.Emargements)
		}
		for _, l := range sc.Lists {
			if l.Votes != want[sc.ID][l.ID] {
				t.Fatalf("scrutin %s list %s: %d votes, want %d", sc.ID, l.ID, l.Votes, want[sc.ID][l.ID])
			}
		}
	}
	pv := filepath.Join(out, "pv.json")
	var sigs []string
	for _, m := range []string{"president", "secretary"} {
		sig := filepath.Join(out, m+".sig")
		e.cli(0, "keys", "sign", "--key", filepath.Join(e.ceremony, "signing", m+".json"), "--file", pv, "--out", sig, "--passphrase-dir", e.passDir)
		sigs = append(sigs, sig)
	}
	members := filepath.Join(e.ceremony, "ceremony.json")
	e.cli(0, "verify", "pv", "--pv", pv, "--sig", strings.Join(sigs, ","), "--members", members)

	fpsFile := filepath.Join(out, "fingerprints.txt")
	published, err := os.ReadFile(fpsFile)
	if err != nil {
		t.Fatal(err)
	}
	var fromReceipts []string
	for i, rc := range receipts {
		fromReceipts = append(fromReceipts, hex.EncodeToString(rc.Fingerprint))
		signed := ballot.SignedReceipt{Receipt: ballot.Receipt{ElectionID: rc.ElectionId, Fingerprint: rc.Fingerprint,
			EmargedAt: time.Unix(0, rc.EmargedAtUnixNano)}, Signature: rc.Signature}
		js, _ := json.Marshal(signed)
		path := filepath.Join(e.work, fmt.Sprintf("receipt-%d.json", i))
		writeFile(t, path, string(js))
		e.cli(0, "verify", "receipt", "--receipt", path, "--fingerprints", fpsFile, "--pv", pv,
			"--key", filepath.Join(e.dir, cluster.ReceiptPublicKeyFile))
	}
	sort.Strings(fromReceipts)
	if got := strings.Fields(string(published)); strings.Join(got, ",") != strings.Join(fromReceipts, ",") {
		t.Fatalf("published fingerprints %v are not those of the receipts %v", got, fromReceipts)
	}
}
