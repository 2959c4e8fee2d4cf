package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/urne-vote/urne/ballot"
	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Defaults of `urne bench suite`.
const (
	defaultSuiteVoters      = 3000
	defaultSuiteConcurrency = 64
	defaultSuiteDuration    = 20 * time.Second
	defaultRSATime          = 3 * time.Second
	// suiteSecretCost is the bcrypt cost of the suite bench's voters: logins are set up, not
	// measured, here (`bench login` measures them at the production cost).
	suiteSecretCost = 4
	// suiteWindowLead is how far ahead the voting window opens when the election is configured:
	// long enough to seal before it, as the decrees require.
	suiteWindowLead = 6 * time.Second
	suiteScrutin    = "ct"
	suiteList       = "L1"
	// suiteSetupWorkers authenticate voters at once before the measure.
	suiteSetupWorkers = 16
	// suiteCodeWait bounds the wait for one one-time code.
	suiteCodeWait = 30 * time.Second
	// suiteRatioTarget is the throughput issue's target: the rsa suite's casts per second over
	// this machine's RSA-2048 private-key operations per second.
	suiteRatioTarget = 0.8
)

// suiteResult is one suite's load in `bench suite`.
type suiteResult struct {
	Suite           string  `json:"suite"`
	Voters          int     `json:"voters"`
	Concurrency     int     `json:"concurrency"`
	Casts           int     `json:"casts"`
	Seconds         float64 `json:"seconds"`
	PerSecond       float64 `json:"casts_per_second"`
	P50Millis       float64 `json:"p50_ms"`
	P99Millis       float64 `json:"p99_ms"`
	Failed          int     `json:"failed"`
	FirstError      string  `json:"first_error,omitempty"`
	VotersExhausted bool    `json:"voters_exhausted"`
	RatioToRSAOps   float64 `json:"ratio_to_rsa_ops"`
}

// suiteReport is the JSON of `bench suite`.
type suiteReport struct {
	Bench string `json:"bench"`
	// RSAOpsPerSec is the better of two measures, before the cluster starts and after the
	// casts: on a machine shared with other work, one measure alone may fall in a busy moment.
	RSAOpsPerSec float64       `json:"rsa2048_private_ops_per_second"`
	RSAMeasures  []float64     `json:"rsa2048_measures"`
	Cores        int           `json:"cores"`
	Profile      string        `json:"profile"`
	Nodes        []string      `json:"nodes"`
	Leader       string        `json:"leader"`
	OpenedOn     string        `json:"envelope_opened_on"`
	SecretCost   int           `json:"secret_cost"`
	RatioTarget  float64       `json:"ratio_target"`
	Suites       []suiteResult `json:"suites"`
}

// suiteOptions are the inputs of `bench suite`.
type suiteOptions struct {
	dir, binary         string
	voters, concurrency int
	nodes               int
	duration, rsaTime   time.Duration
}

func (a *app) benchSuiteCommand() *cobra.Command {
	o := suiteOptions{}
	cmd := &cobra.Command{
		Use:   "suite --dir DIR",
		Short: "Measure sealed casts per second for each ballot suite, against this machine's RSA-2048 speed",
		Long: "Measure this machine's RSA-2048 private-key operations per second on all cores, then start a\n" +
			"fresh 2+2+1 cluster in DIR (a previous bench cluster there is removed) running a civil-service\n" +
			"election: scrutin, list, election keys of both suites, roll, window, seal, open. For each\n" +
			"suite, --voters voters log in (identifier by mail, code by SMS, through sinks this command\n" +
			"runs on loopback) and their envelopes are sealed ahead; then they cast from --concurrency\n" +
			"callers at once, spread over the nodes' endpoints, for --duration or until every one has\n" +
			"voted. Each cast checks the session, opens the envelope on the node that receives it and\n" +
			"returns a signed receipt. The report gives casts/s per suite and the rsa suite's ratio to the\n" +
			"RSA operations per second. The cluster is stopped at the end.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.runSuiteBench(cmd.Context(), o)
			if r == nil {
				return err
			}
			if emitErr := a.emit(r, func(w io.Writer) { printSuiteBench(w, r) }); emitErr != nil {
				return emitErr
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.dir, "dir", "", "folder of the bench cluster")
	fl.IntVar(&o.voters, "voters", defaultSuiteVoters, "voters per suite, each casting once")
	fl.IntVar(&o.concurrency, "concurrency", defaultSuiteConcurrency, "casts in flight")
	fl.IntVar(&o.nodes, "nodes", 0, "casts spread over the first this many nodes (default: all)")
	fl.DurationVar(&o.duration, "duration", defaultSuiteDuration, "longest time each suite's casts run")
	fl.DurationVar(&o.rsaTime, "rsa-duration", defaultRSATime, "how long the RSA-2048 operations are measured")
	fl.StringVar(&o.binary, "urne-binary", "", "urne binary the nodes run (default: this one)")
	must(fl.MarkHidden("urne-binary"))
	must(cmd.MarkFlagRequired("dir"))
	return cmd
}

func (a *app) runSuiteBench(ctx context.Context, o suiteOptions) (*suiteReport, error) {
	if o.concurrency < 1 || o.voters < 1 || o.duration <= 0 || o.rsaTime <= 0 || o.nodes < 0 {
		return nil, errors.New("--concurrency, --voters, --duration and --rsa-duration must be positive")
	}
	r := &suiteReport{Bench: "suite", Cores: runtime.NumCPU(), Profile: client.ProfileCivilService,
		OpenedOn: "receiving node", SecretCost: suiteSecretCost, RatioTarget: suiteRatioTarget, Suites: []suiteResult{}}
	if err := a.measureRSA(ctx, r, o.rsaTime); err != nil {
		return nil, err
	}
	b, err := a.startAuthBench(ctx, authBenchOptions{dir: o.dir, binary: o.binary, cost: suiteSecretCost})
	if b != nil {
		defer b.close()
	}
	if err != nil {
		return nil, err
	}
	if o.nodes == 0 {
		o.nodes = len(b.nodes)
	}
	if o.nodes > len(b.nodes) {
		return nil, fmt.Errorf("--nodes %d: the cluster has %d nodes", o.nodes, len(b.nodes))
	}
	for _, n := range b.nodes[:o.nodes] {
		r.Nodes = append(r.Nodes, n.id)
	}
	s := &suiteBench{authBench: b, o: o}
	if err := s.prepareElection(ctx); err != nil {
		return nil, err
	}
	for _, key := range s.keys {
		suite := key.Public().Suite()
		roll := s.roll[:o.voters]
		s.roll = s.roll[o.voters:]
		casts, err := s.sessions(ctx, key, roll)
		if err != nil {
			return r, err
		}
		r.Leader = b.leader(ctx)
		res := s.castLoad(ctx, suite, casts)
		r.Suites = append(r.Suites, res)
		a.say("%s: %d casts in %.1fs, %.1f casts/s, p50 %.0f ms, p99 %.0f ms, %d failed", suite, res.Casts, res.Seconds,
			res.PerSecond, res.P50Millis, res.P99Millis, res.Failed)
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	b.close() // the second measure runs without the cluster
	if err := a.measureRSA(ctx, r, o.rsaTime); err != nil {
		return r, err
	}
	for i := range r.Suites {
		r.Suites[i].RatioToRSAOps = r.Suites[i].PerSecond / r.RSAOpsPerSec
	}
	return r, nil
}

// measureRSA adds one measure of the RSA-2048 operations to r and keeps the best.
func (a *app) measureRSA(ctx context.Context, r *suiteReport, d time.Duration) error {
	a.say("measuring RSA-2048 private-key operations on %d goroutines for %v", runtime.GOMAXPROCS(0), d)
	ops, err := a.rsaOpsPerSecond(ctx, d)
	if err != nil {
		return err
	}
	a.say("%.0f RSA-2048 private-key operations per second", ops)
	r.RSAMeasures = append(r.RSAMeasures, ops)
	r.RSAOpsPerSec = max(r.RSAOpsPerSec, ops)
	return nil
}

// rsaOpsPerSecond runs RSA-OAEP decryptions with a 2048-bit key, as a node opening envelopes
// does, on GOMAXPROCS goroutines for d, and returns how many completed per second.
func (a *app) rsaOpsPerSecond(ctx context.Context, d time.Duration) (float64, error) {
	key, err := rsa.GenerateKey(rand.Reader, ballot.EnvelopeRSABits)
	if err != nil {
		return 0, err
	}
	label := []byte("urne bench")
	secret := make([]byte, 32)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, secret, label)
	if err != nil {
		return 0, err
	}
	var ops atomic.Int64
	errs := make([]error, runtime.GOMAXPROCS(0))
	start := time.Now()
	deadline := start.Add(d)
	stop := a.ticker(500*time.Millisecond, func() {
		a.progress("RSA-2048: %.0f private-key operations/s", float64(ops.Load())/time.Since(start).Seconds())
	})
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := rsa.DecryptOAEP(sha256.New(), nil, key, ct, label); err != nil {
					errs[i] = err
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	stop()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return 0, err
	}
	return float64(ops.Load()) / time.Since(start).Seconds(), nil
}

// suiteBench is the election of `bench suite` on its cluster.
type suiteBench struct {
	*authBench
	o        suiteOptions
	keys     []*ballot.ElectionPrivateKey // one per suite, in ballot.Suites order
	envelope *rsa.PublicKey
	roll     []benchVoter // voters not yet used by a suite
}

// sealedCast is a voter's cast, sealed ahead for its session.
type sealedCast struct {
	session  *urnepb.VerifyCodeResponse
	envelope []byte
	inner    []byte
}

// prepareElection runs the organizer's and the bureau's part of a civil-service election up
// to its opening: scrutin, list, election keys, roll, window, seal, open, identifiers.
func (s *suiteBench) prepareElection(ctx context.Context) error {
	org := s.organizer
	id := s.d.file.ElectionID
	if _, err := org.CreateElectionProfile(ctx, id, "Bench suites", client.ProfileCivilService); err != nil {
		return fmt.Errorf("creating the election: %w", err)
	}
	if _, err := org.PutScrutin(ctx, &urnepb.Scrutin{ScrutinId: suiteScrutin, Name: "Comité technique", Colleges: []string{"A"}, Seats: 2}); err != nil {
		return fmt.Errorf("filing the scrutin: %w", err)
	}
	if _, err := org.PutCandidateList(ctx, &urnepb.CandidateList{ScrutinId: suiteScrutin, ListId: suiteList, Name: "Liste 1",
		Candidates: []*urnepb.Candidate{{Name: "Alice Bench", Sex: "F", DateOfBirth: "1970-01-01"}, {Name: "Bruno Bench", Sex: "M", DateOfBirth: "1971-01-01"}}}); err != nil {
		return fmt.Errorf("filing the list: %w", err)
	}
	s.a.say("generating the election keys (%s)", suiteNames())
	var pems []byte
	for _, suite := range ballot.Suites {
		k, err := ballot.GenerateElectionKey(suite)
		if err != nil {
			return err
		}
		s.keys = append(s.keys, k)
		pems = append(pems, k.Public().MarshalPEM()...)
	}
	if _, err := org.SetElectionKey(ctx, pems, nil); err != nil {
		return fmt.Errorf("recording the election key: %w", err)
	}
	pub, err := os.ReadFile(filepath.Join(s.d.dir, cluster.EnvelopePublicKeyFile))
	if err != nil {
		return err
	}
	if s.envelope, err = ballot.ParseEnvelopePublicKeyPEM(pub); err != nil {
		return err
	}
	if s.roll, err = s.a.benchRoll(s.o.voters*len(s.keys), suiteSecretCost, "A"); err != nil {
		return err
	}
	if err := s.a.importRoll(ctx, org, s.roll); err != nil {
		return err
	}
	opens := time.Now().Add(suiteWindowLead)
	if _, err := org.ConfigureElection(ctx, &urnepb.ElectionConfig{Organizer: "Urne bench", Controller: "Urne bench", Processor: "Urne bench",
		OpensAtUnixNano: opens.UnixNano(), ClosesAtUnixNano: opens.Add(24 * time.Hour).UnixNano(),
		Bureau: []*urnepb.BureauMember{{Name: "Bench president", Email: "president@bench.invalid", Function: "president"}}}); err != nil {
		return fmt.Errorf("configuring the election: %w", err)
	}
	if _, err := s.bureau.SealElection(ctx); err != nil {
		return fmt.Errorf("sealing the election: %w", err)
	}
	s.a.say("election sealed; the window opens at %s", opens.Format(time.TimeOnly))
	if err := s.open(ctx, opens); err != nil {
		return err
	}
	return s.issueIdentifiers(ctx, s.roll)
}

// open opens the election once its window has begun by the leader's clock.
func (s *suiteBench) open(ctx context.Context, opens time.Time) error {
	if !waitUntil(ctx, opens, nil) {
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := s.bureau.OpenElection(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, client.ErrOutsideWindow) {
			return fmt.Errorf("opening the election: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("opening the election: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func suiteNames() string {
	names := make([]string, len(ballot.Suites))
	for i, s := range ballot.Suites {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

// sessions authenticates every voter of roll (identifier and secret, code by SMS) and seals
// each one's ballot to key and envelope to the cluster, before anything is measured.
func (s *suiteBench) sessions(ctx context.Context, key *ballot.ElectionPrivateKey, roll []benchVoter) ([]sealedCast, error) {
	casts := make([]sealedCast, len(roll))
	errs := make([]error, len(roll))
	var next, done atomic.Int64
	stop := s.a.ticker(500*time.Millisecond, func() {
		s.a.progress("%s: voters logged in and ballots sealed: %d of %d", key.Public().Suite(), done.Load(), len(roll))
	})
	var wg sync.WaitGroup
	for range suiteSetupWorkers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(roll) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				casts[i], errs[i] = s.sealedCast(ctx, key, roll[i])
				done.Add(1)
				if errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	stop()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return nil, err
	}
	return casts, nil
}

func (s *suiteBench) sealedCast(ctx context.Context, key *ballot.ElectionPrivateKey, v benchVoter) (sealedCast, error) {
	login, err := s.appClient.Login(ctx, v.identifier, v.secret)
	if err != nil {
		return sealedCast{}, fmt.Errorf("login of %s: %w", v.id, err)
	}
	if _, err := s.appClient.RequestCode(ctx, login.ChallengeToken, v.phone); err != nil {
		return sealedCast{}, fmt.Errorf("code for %s: %w", v.id, err)
	}
	code := ""
	for deadline := time.Now().Add(suiteCodeWait); code == ""; {
		if code = s.sms.code(v.phone); code != "" {
			break
		}
		if time.Now().After(deadline) {
			return sealedCast{}, fmt.Errorf("no code texted to %s within %v", v.phone, suiteCodeWait)
		}
		if !waitUntil(ctx, time.Now().Add(20*time.Millisecond), nil) {
			return sealedCast{}, ctx.Err()
		}
	}
	session, err := s.appClient.VerifyCode(ctx, login.ChallengeToken, code)
	if err != nil {
		return sealedCast{}, fmt.Errorf("code of %s: %w", v.id, err)
	}
	inner, err := ballot.SealBallot(key.Public(), ballot.Vote{Scrutin: suiteScrutin, List: suiteList})
	if err != nil {
		return sealedCast{}, err
	}
	envelope, err := ballot.SealEnvelope(s.envelope, session.SessionId, session.EnvelopeNonce, inner)
	if err != nil {
		return sealedCast{}, err
	}
	return sealedCast{session: session, envelope: envelope, inner: inner}, nil
}

// castLoad casts the sealed ballots from o.concurrency callers, round-robin over the nodes,
// until o.duration passes or every voter has cast.
func (s *suiteBench) castLoad(ctx context.Context, suite ballot.Suite, casts []sealedCast) suiteResult {
	targets := s.nodes[:s.o.nodes]
	res := suiteResult{Suite: suite.String(), Voters: len(casts), Concurrency: s.o.concurrency}
	var next atomic.Int64
	var last atomic.Int64 // end of the last call, in ns since start
	l := newLatencies()
	start := time.Now()
	deadline := start.Add(s.o.duration)
	stop := s.a.ticker(500*time.Millisecond, func() {
		ok, failed := l.counts()
		el := time.Since(start).Seconds()
		s.a.progress("%s %4.0fs  %d casts  %.1f/s  failed %d", suite, el, ok, float64(ok)/el, failed)
	})
	var wg sync.WaitGroup
	for range s.o.concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(casts) {
					return
				}
				c, t := casts[i], targets[i%len(targets)]
				cctx, cancel := context.WithTimeout(ctx, benchCallTimeout)
				began := time.Now()
				resp, err := t.election.CastSealed(cctx, &urnepb.CastSealedRequest{RequestId: client.NewRequestID(),
					SessionToken: c.session.SessionToken, ScrutinId: suiteScrutin, Envelope: c.envelope})
				cancel()
				if err == nil {
					err = checkReceipt(resp, c.inner)
				}
				l.add(time.Since(began), err)
				last.Store(int64(time.Since(start)))
			}
		})
	}
	wg.Wait()
	stop()
	res.VotersExhausted = int(next.Load()) >= len(casts)
	res.Seconds = time.Since(start).Seconds()
	if res.VotersExhausted {
		res.Seconds = time.Duration(last.Load()).Seconds()
	}
	res.Casts, res.Failed = l.counts()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Casts) / res.Seconds
	}
	res.P50Millis, res.P99Millis = l.percentile(50), l.percentile(99)
	res.FirstError = l.firstError()
	return res
}

// checkReceipt asks of a cast's answer a signed receipt for the ballot sealed in the envelope.
func checkReceipt(resp *urnepb.CastResponse, inner []byte) error {
	rc := resp.GetReceipt()
	if !bytes.Equal(rc.GetFingerprint(), ballot.Fingerprint(inner)) {
		return fmt.Errorf("the receipt names ballot %x, not the one cast", rc.GetFingerprint())
	}
	if len(rc.GetSignature()) == 0 {
		return errors.New("the receipt is not signed")
	}
	return nil
}

func printSuiteBench(w io.Writer, r *suiteReport) {
	fprintf(w, "RSA-2048 private-key operations: %.0f/s on %d cores (best of %.0f)\n", r.RSAOpsPerSec, r.Cores, r.RSAMeasures)
	fprintf(w, "sealed casts of a %s election over nodes %s (leader %s); envelopes opened on the %s\n\n",
		r.Profile, strings.Join(r.Nodes, ","), r.Leader, r.OpenedOn)
	rows := make([]string, len(r.Suites))
	for i, s := range r.Suites {
		rows[i] = fmt.Sprintf("%s\t%d\t%.1f\t%d\t%.1f\t%.0f\t%.0f\t%d\t%.3f", s.Suite, s.Concurrency, s.Seconds, s.Casts, s.PerSecond,
			s.P50Millis, s.P99Millis, s.Failed, s.RatioToRSAOps)
	}
	table(w, "SUITE\tAT ONCE\tSECONDS\tCASTS\tCASTS/S\tP50 MS\tP99 MS\tFAILED\tRATIO TO RSA OPS", rows)
	for _, s := range r.Suites {
		if s.VotersExhausted {
			fprintf(w, "%s: every voter had cast before --duration; give more --voters for a longer measure\n", s.Suite)
		}
		if s.FirstError != "" {
			fprintf(w, "%s: first failure: %s\n", s.Suite, s.FirstError)
		}
	}
	fprintf(w, "target: the rsa suite's casts/s at least %.1f times the RSA operations/s\n", r.RatioTarget)
}
