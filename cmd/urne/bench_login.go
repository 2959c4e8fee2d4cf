package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/urne-vote/urne/client"
	"github.com/urne-vote/urne/client/workload"
	"github.com/urne-vote/urne/cluster"
	"github.com/urne-vote/urne/node"
	"github.com/urne-vote/urne/transport/pki"
	"github.com/urne-vote/urne/transport/urnepb"
)

// Defaults of `urne bench login`.
const (
	defaultLoginVoters      = 200
	defaultLoginConcurrency = 32
	defaultLoginDuration    = 20 * time.Second
	benchAuthElection       = "bench"
	// benchDistinctSecrets bounds the secrets hashed ahead (bcrypt at the production cost is
	// slow): voters share them, the cluster cannot tell and checks one hash per login all the same.
	benchDistinctSecrets = 16
	// benchCallTimeout bounds one login or cast of the load.
	benchCallTimeout = 30 * time.Second
	// benchMailWait is how long the identifiers may stop arriving before the bench gives up.
	benchMailWait = 60 * time.Second
)

// loginLevel is one load level of `bench login`: the logins spread over the first nodes.
type loginLevel struct {
	Nodes          int      `json:"nodes"`
	NodeIDs        []string `json:"node_ids"`
	IncludesLeader bool     `json:"includes_leader"`
	Concurrency    int      `json:"concurrency"`
	Seconds        float64  `json:"seconds"`
	Logins         int      `json:"logins"`
	PerSecond      float64  `json:"logins_per_second"`
	P50Millis      float64  `json:"p50_ms"`
	P99Millis      float64  `json:"p99_ms"`
	Failed         int      `json:"failed"`
	FirstError     string   `json:"first_error,omitempty"`
}

// loginReport is the JSON of `bench login`.
type loginReport struct {
	Bench  string `json:"bench"`
	Cost   int    `json:"cost"`
	Voters int    `json:"voters"`
	Cores  int    `json:"cores"`
	Leader string `json:"leader"`
	// CheckedOn says where the slow hash is compared: on the node that receives the Login call.
	CheckedOn string       `json:"checked_on"`
	Levels    []loginLevel `json:"levels"`
}

// loginOptions are the inputs of `bench login`.
type loginOptions struct {
	dir, binary         string
	nodes               []int
	concurrency, voters int
	duration            time.Duration
	cost                int
}

func (a *app) benchLoginCommand() *cobra.Command {
	o := loginOptions{}
	var nodes string
	cmd := &cobra.Command{
		Use:   "login --dir DIR",
		Short: "Measure logins per second (identifier and secret, the slow hash) as they spread over more nodes",
		Long: "Start a fresh 2+2+1 cluster in DIR (a previous bench cluster there is removed) whose nodes\n" +
			"mail to a relay and text to a gateway this command runs on loopback. Import --voters voters\n" +
			"whose secrets are prepared at the production bcrypt cost, open the election, issue the\n" +
			"identifiers and read them from the mails. Then, for each count in --nodes, send Login calls\n" +
			"(the first authentication factor) from --concurrency callers for --duration, spread over\n" +
			"that many nodes' endpoints, and report logins/s and latency. The cluster is stopped at the end.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.nodes, err = parseNodeCounts(nodes); err != nil {
				return err
			}
			r, err := a.runLoginBench(cmd.Context(), o)
			if r == nil {
				return err
			}
			if emitErr := a.emit(r, func(w io.Writer) { printLoginBench(w, r) }); emitErr != nil {
				return emitErr
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.dir, "dir", "", "folder of the bench cluster")
	fl.StringVar(&nodes, "nodes", "1,3,5", "node counts the logins spread over, one level each")
	fl.IntVar(&o.concurrency, "concurrency", defaultLoginConcurrency, "logins in flight")
	fl.DurationVar(&o.duration, "duration", defaultLoginDuration, "how long each level runs")
	fl.IntVar(&o.voters, "voters", defaultLoginVoters, "voters on the roll; each logs in again and again")
	fl.IntVar(&o.cost, "cost", node.DefaultConfig().SecretHashCost, "bcrypt cost of the secrets and of the nodes (lower only to test this command)")
	fl.StringVar(&o.binary, "urne-binary", "", "urne binary the nodes run (default: this one)")
	must(fl.MarkHidden("urne-binary"))
	must(fl.MarkHidden("cost"))
	must(cmd.MarkFlagRequired("dir"))
	return cmd
}

// parseNodeCounts reads a list like "1,3,5".
func parseNodeCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--nodes %q: want a list of node counts such as 1,3,5", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("--nodes is empty: give node counts such as 1,3,5")
	}
	return out, nil
}

func (a *app) runLoginBench(ctx context.Context, o loginOptions) (*loginReport, error) {
	if o.concurrency < 1 || o.voters < 1 || o.duration <= 0 {
		return nil, errors.New("--concurrency, --voters and --duration must be positive")
	}
	b, err := a.startAuthBench(ctx, authBenchOptions{dir: o.dir, binary: o.binary, cost: o.cost})
	if b != nil {
		defer b.close()
	}
	if err != nil {
		return nil, err
	}
	for _, n := range o.nodes {
		if n > len(b.nodes) {
			return nil, fmt.Errorf("--nodes %d: the cluster has %d nodes", n, len(b.nodes))
		}
	}
	if _, err := b.organizer.CreateElectionProfile(ctx, b.d.file.ElectionID, "Bench login", client.ProfileTest); err != nil {
		return nil, fmt.Errorf("creating the election: %w", err)
	}
	roll, err := a.benchRoll(o.voters, o.cost, "A")
	if err != nil {
		return nil, err
	}
	if err := a.importRoll(ctx, b.organizer, roll); err != nil {
		return nil, err
	}
	if _, err := b.organizer.OpenElection(ctx); err != nil {
		return nil, fmt.Errorf("opening the election: %w", err)
	}
	if err := b.issueIdentifiers(ctx, roll); err != nil {
		return nil, err
	}
	r := &loginReport{Bench: "login", Cost: o.cost, Voters: o.voters, Cores: runtime.NumCPU(),
		CheckedOn: "receiving node", Levels: []loginLevel{}}
	for _, n := range o.nodes {
		// A level that lost the leader to an overloaded machine must not start the next one
		// without one.
		if r.Leader, err = waitDevReady(ctx, b.d, b.d.ids(), true, defaultReadyWait); err != nil {
			return r, err
		}
		lvl := b.loginLevel(ctx, roll, n, o)
		lvl.IncludesLeader = slices.Contains(lvl.NodeIDs, r.Leader)
		r.Levels = append(r.Levels, lvl)
		a.say("%d node(s): %d logins in %.1fs, %.1f logins/s, p50 %.0f ms, p99 %.0f ms, %d failed",
			n, lvl.Logins, lvl.Seconds, lvl.PerSecond, lvl.P50Millis, lvl.P99Millis, lvl.Failed)
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	return r, nil
}

// loginLevel sends logins for o.duration, round-robin over the first n nodes.
func (b *authBench) loginLevel(ctx context.Context, roll []benchVoter, n int, o loginOptions) loginLevel {
	targets := b.nodes[:n]
	lvl := loginLevel{Nodes: n, Concurrency: o.concurrency}
	for _, t := range targets {
		lvl.NodeIDs = append(lvl.NodeIDs, t.id)
	}
	var next atomic.Int64
	l := newLatencies()
	start := time.Now()
	deadline := start.Add(o.duration)
	stop := b.a.ticker(500*time.Millisecond, func() {
		ok, failed := l.counts()
		el := time.Since(start).Seconds()
		b.a.progress("%d node(s) %4.0fs  %d logins  %.1f/s  failed %d", n, el, ok, float64(ok)/el, failed)
	})
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				v, t := roll[i%len(roll)], targets[i%len(targets)]
				cctx, cancel := context.WithTimeout(ctx, benchCallTimeout)
				began := time.Now()
				resp, err := t.election.Login(cctx, &urnepb.LoginRequest{Identifier: v.identifier, Secret: v.secret, RequestId: client.NewRequestID()})
				cancel()
				if err == nil && resp.GetChallengeToken() == "" {
					err = errors.New("login accepted without a challenge token")
				}
				l.add(time.Since(began), err)
			}
		})
	}
	wg.Wait()
	stop()
	lvl.Seconds = time.Since(start).Seconds()
	lvl.Logins, lvl.Failed = l.counts()
	lvl.PerSecond = float64(lvl.Logins) / lvl.Seconds
	lvl.P50Millis, lvl.P99Millis = l.percentile(50), l.percentile(99)
	lvl.FirstError = l.firstError()
	return lvl
}

func printLoginBench(w io.Writer, r *loginReport) {
	fprintf(w, "logins with bcrypt cost %d, %d voters, %d cores, leader %s; the hash is checked on the %s\n\n",
		r.Cost, r.Voters, r.Cores, r.Leader, r.CheckedOn)
	rows := make([]string, len(r.Levels))
	for i, l := range r.Levels {
		rows[i] = fmt.Sprintf("%d\t%s\t%d\t%.1f\t%d\t%.1f\t%.0f\t%.0f\t%d", l.Nodes, strings.Join(l.NodeIDs, ","), l.Concurrency,
			l.Seconds, l.Logins, l.PerSecond, l.P50Millis, l.P99Millis, l.Failed)
	}
	table(w, "NODES\tIDS\tAT ONCE\tSECONDS\tLOGINS\tLOGINS/S\tP50 MS\tP99 MS\tFAILED", rows)
	for _, l := range r.Levels {
		if l.FirstError != "" {
			fprintf(w, "%d node(s): first failure: %s\n", l.Nodes, l.FirstError)
		}
	}
}

// latencies collects the outcome of the calls of a load.
type latencies struct {
	mu     sync.Mutex
	ok     []time.Duration
	failed int
	first  error
}

func newLatencies() *latencies { return &latencies{} }

func (l *latencies) add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed++
		if l.first == nil {
			l.first = err
		}
		return
	}
	l.ok = append(l.ok, d)
}

func (l *latencies) counts() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ok), l.failed
}

func (l *latencies) firstError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first == nil {
		return ""
	}
	return l.first.Error()
}

// percentile is the p-th percentile of the successful calls' latencies, in milliseconds.
func (l *latencies) percentile(p int) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ok) == 0 {
		return 0
	}
	return ms(workload.Percentile(slices.Sorted(slices.Values(l.ok)), p))
}

// authBenchOptions are the inputs shared by the benchmarks of the authenticated path.
type authBenchOptions struct {
	dir, binary string
	cost        int
}

// authBench is a fresh dev cluster whose nodes deliver mail and texts to sinks run by this
// process, with clients of every role and one connection per node for the load.
type authBench struct {
	a                            *app
	d                            *devCluster
	mail                         *mailSink
	sms                          *smsSink
	organizer, bureau, appClient *client.Client
	nodes                        []benchNode // cluster file order
}

// benchNode is one node's endpoint, called directly so that the load lands where it is sent.
type benchNode struct {
	id, endpoint string
	conn         *grpc.ClientConn
	election     urnepb.ElectionClient
}

// startAuthBench creates a 2+2+1 cluster in o.dir with delivery to local sinks and starts it.
// It returns the bench whenever something must be cleaned up, with the error that stopped it.
func (a *app) startAuthBench(ctx context.Context, o authBenchOptions) (*authBench, error) {
	if err := clearOldDemo(o.dir, o.binary); err != nil {
		return nil, err
	}
	if _, err := ensureClusterDir(upOptions{dir: o.dir, topology: defaultTopology, election: benchAuthElection}); err != nil {
		return nil, err
	}
	b := &authBench{a: a}
	var err error
	if b.mail, err = startMailSink(); err != nil {
		return b, err
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	if b.sms, err = startSMSSink(hex.EncodeToString(token)); err != nil {
		return b, err
	}
	if err := b.configureNodes(o); err != nil {
		return b, err
	}
	if err := issueClient(o.dir, roleBureau); err != nil {
		return b, err
	}
	a.say("starting a %s cluster in %s (bcrypt cost %d)", defaultTopology, o.dir, o.cost)
	d, up, err := a.devUp(ctx, upOptions{dir: o.dir, binary: o.binary, topology: defaultTopology, election: benchAuthElection, wait: defaultReadyWait})
	b.d = d
	if err != nil {
		return b, err
	}
	a.say("%d nodes up, leader %s", len(up.Nodes), up.Leader)
	return b, b.connect()
}

// configureNodes points every node's outbox at the sinks and sets the bcrypt cost.
func (b *authBench) configureNodes(o authBenchOptions) error {
	file, err := client.ReadClusterFile(filepath.Join(o.dir, client.ClusterFileName))
	if err != nil {
		return err
	}
	tokenFile, err := filepath.Abs(filepath.Join(o.dir, "sms.token"))
	if err != nil {
		return err
	}
	if err := pki.WriteFile(tokenFile, []byte(b.sms.token+"\n"), 0o600); err != nil {
		return err
	}
	for _, n := range file.Nodes {
		path := cluster.NodeConfigPath(o.dir, n.ID)
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		cfg := node.DefaultConfig()
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		cfg.SecretHashCost = o.cost
		cfg.Delivery = node.DeliveryConfig{
			Email: []node.SMTPConfig{{Addr: b.mail.addr, From: "vote@bench.invalid", TLS: node.SMTPPlain}},
			SMS:   []node.SMSConfig{{URL: b.sms.url, TokenFile: tokenFile}},
		}
		out, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return err
		}
		if err := pki.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// connect opens the clients of the setup and one connection per node for the load.
func (b *authBench) connect() error {
	var err error
	for _, c := range []struct {
		role string
		to   **client.Client
	}{{roleOrganizer, &b.organizer}, {roleBureau, &b.bureau}, {roleApp, &b.appClient}} {
		cfg, _, lerr := client.LoadClusterDir(b.d.dir, c.role)
		if lerr != nil {
			return lerr
		}
		if *c.to, err = client.New(cfg); err != nil {
			return err
		}
	}
	cfg, _, err := client.LoadClusterDir(b.d.dir, roleApp)
	if err != nil {
		return err
	}
	for _, n := range b.d.file.Nodes {
		conn, err := dialNode(n.GRPC, cfg.TLS)
		if err != nil {
			return err
		}
		b.nodes = append(b.nodes, benchNode{id: n.ID, endpoint: n.GRPC, conn: conn, election: urnepb.NewElectionClient(conn)})
	}
	return nil
}

func dialNode(endpoint string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	return conn, nil
}

// leader names the node the cluster agrees leads, or "".
func (b *authBench) leader(ctx context.Context) string {
	c, err := b.d.operatorClient()
	if err != nil {
		return ""
	}
	defer closeClient(c)
	return agreedLeader(askNodes(ctx, c, b.d.targets(b.d.ids())))
}

// close stops the cluster and the sinks and closes every connection; a second call does nothing.
func (b *authBench) close() {
	for _, n := range b.nodes {
		_ = n.conn.Close()
	}
	b.nodes = nil
	for _, c := range []*client.Client{b.organizer, b.bureau, b.appClient} {
		if c != nil {
			closeClient(c)
		}
	}
	b.organizer, b.bureau, b.appClient = nil, nil, nil
	if b.d != nil {
		if _, err := b.d.stopAll(stopGrace); err != nil {
			b.a.say("stopping the cluster: %v", err)
		} else {
			b.a.say("cluster stopped")
		}
		b.d = nil
	}
	if b.mail != nil {
		b.mail.close()
		b.mail = nil
	}
	if b.sms != nil {
		b.sms.close()
		b.sms = nil
	}
}

// benchVoter is a voter of a bench roll and what the bench learns of it.
type benchVoter struct {
	id, email, secret, prepared, college string
	phone, identifier                    string
}

// benchRoll makes n voters whose secrets are hashed ahead at cost, as `election prepare` does,
// benchDistinctSecrets hashes computed on every core and shared.
func (a *app) benchRoll(n, cost int, college string) ([]benchVoter, error) {
	distinct := min(n, benchDistinctSecrets)
	secrets, hashes := make([]string, distinct), make([]string, distinct)
	errs := make([]error, distinct)
	var done atomic.Int64
	stop := a.ticker(500*time.Millisecond, func() {
		a.progress("hashing secrets at bcrypt cost %d: %d of %d", cost, done.Load(), distinct)
	})
	var wg sync.WaitGroup
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range work {
				secrets[i] = fmt.Sprintf("bench-secret-%02d", i)
				h, err := node.PrepareSecret(secrets[i], cost)
				hashes[i], errs[i] = string(h), err
				done.Add(1)
			}
		})
	}
	for i := range distinct {
		work <- i
	}
	close(work)
	wg.Wait()
	stop()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("hashing the secrets: %w", err)
	}
	roll := make([]benchVoter, n)
	for i := range roll {
		id := fmt.Sprintf("b%07d", i+1)
		roll[i] = benchVoter{id: id, email: id + "@bench.invalid", secret: secrets[i%distinct], prepared: hashes[i%distinct],
			college: college, phone: fmt.Sprintf("+3360%07d", i+1)}
	}
	return roll, nil
}

// importRoll imports the voters with their prepared secrets.
func (a *app) importRoll(ctx context.Context, c *client.Client, roll []benchVoter) error {
	var sent atomic.Int64
	stop := a.ticker(500*time.Millisecond, func() { a.progress("importing voters: %d of %d", sent.Load(), len(roll)) })
	defer stop()
	_, err := c.ImportVoters(ctx, func() (*urnepb.Voter, error) {
		i := int(sent.Load())
		if i == len(roll) {
			return nil, io.EOF
		}
		sent.Add(1)
		v := roll[i]
		return &urnepb.Voter{VoterId: v.id, Name: "Voter " + v.id, Email: v.email, DateOfBirth: "1980-01-01",
			SecretBcrypt: v.prepared, College: v.college}, nil
	})
	if err != nil {
		return fmt.Errorf("importing %d voters: %w", len(roll), err)
	}
	return nil
}

// issueIdentifiers has the cluster issue and mail every voter's identifier, and reads them
// from the mail relay.
func (b *authBench) issueIdentifiers(ctx context.Context, roll []benchVoter) error {
	if _, err := b.organizer.IssueIdentifiers(ctx, ""); err != nil {
		return fmt.Errorf("issuing identifiers: %w", err)
	}
	stop := b.a.ticker(500*time.Millisecond, func() {
		b.a.progress("identifiers mailed: %d of %d", b.mail.count(), len(roll))
	})
	defer stop()
	// The outbox delivers at its own pace: wait as long as mails keep coming.
	lastCount, lastNews := -1, time.Now()
	for {
		missing := 0
		for i := range roll {
			if roll[i].identifier == "" {
				roll[i].identifier = b.mail.identifier(roll[i].email)
			}
			if roll[i].identifier == "" {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if missing != lastCount {
			lastCount, lastNews = missing, time.Now()
		}
		if time.Since(lastNews) > benchMailWait {
			return fmt.Errorf("%d of %d identifiers still not mailed, none for %v", missing, len(roll), benchMailWait)
		}
		if !waitUntil(ctx, time.Now().Add(100*time.Millisecond), nil) {
			return ctx.Err()
		}
	}
}

// identifierPattern finds the identifier in the mail that carries it.
var identifierPattern = regexp.MustCompile(`est : ([A-Z2-9]{12})`)

// identifierIn returns the voter identifier a mail carries, or "".
func identifierIn(mail string) string {
	if m := identifierPattern.FindStringSubmatch(mail); m != nil {
		return m[1]
	}
	return ""
}

// codePattern finds the one-time code in the text that carries it.
var codePattern = regexp.MustCompile(`: ([0-9]{6}) `)

// codeIn returns the one-time code a text carries, or "".
func codeIn(text string) string {
	if m := codePattern.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

// mailSink is an SMTP relay on loopback that keeps the identifier of each recipient.
type mailSink struct {
	addr string
	srv  *smtp.Server

	mu          sync.Mutex
	identifiers map[string]string // recipient -> identifier
}

func startMailSink() (*mailSink, error) {
	m := &mailSink{identifiers: map[string]string{}}
	m.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{sink: m}, nil }))
	m.srv.Domain = "localhost"
	m.srv.ReadTimeout, m.srv.WriteTimeout = 10*time.Second, 10*time.Second
	m.srv.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mail relay: %w", err)
	}
	m.addr = ln.Addr().String()
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

func (m *mailSink) close() { _ = m.srv.Close() }

func (m *mailSink) identifier(rcpt string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.identifiers[strings.ToLower(rcpt)]
}

func (m *mailSink) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.identifiers)
}

// mailSession receives one SMTP session's messages.
type mailSession struct {
	sink *mailSink
	to   []string
}

func (s *mailSession) Reset()                                    { s.to = nil }
func (s *mailSession) Logout() error                             { return nil }
func (s *mailSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = append(s.to, to); return nil }

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	id := identifierIn(string(b))
	if id == "" || len(s.to) != 1 {
		return nil // another mail (the bureau's notices)
	}
	s.sink.mu.Lock()
	s.sink.identifiers[strings.ToLower(s.to[0])] = id
	s.sink.mu.Unlock()
	return nil
}

// smsSink is an SMS gateway on loopback that keeps the last code texted to each phone.
type smsSink struct {
	url, token string
	srv        *http.Server

	mu    sync.Mutex
	codes map[string]string // phone -> last code
}

func startSMSSink(token string) (*smsSink, error) {
	g := &smsSink{token: token, codes: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sms gateway: %w", err)
	}
	g.url = "http://" + ln.Addr().String() + "/sms"
	g.srv = &http.Server{Handler: http.HandlerFunc(g.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

func (g *smsSink) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+g.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	to, code, err := parseSMS(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.codes[to] = code
	g.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// parseSMS reads the gateway's JSON request and the code its text carries.
func parseSMS(r io.Reader) (to, code string, err error) {
	var msg struct {
		To   string `json:"to"`
		Text string `json:"text"`
	}
	if err := json.NewDecoder(r).Decode(&msg); err != nil {
		return "", "", fmt.Errorf("sms request: %w", err)
	}
	if msg.To == "" {
		return "", "", errors.New("sms request names no recipient")
	}
	return msg.To, codeIn(msg.Text), nil
}

func (g *smsSink) code(phone string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.codes[phone]
}

func (g *smsSink) close() { _ = g.srv.Close() }
