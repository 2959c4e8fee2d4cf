package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/urne-vote/urne/fsm"
	"github.com/urne-vote/urne/fsm/fsmpb"
)

// metrics are one node's Prometheus collectors, registered on the node's own registry.
type metrics struct {
	commit        prometheus.Histogram
	applyBatch    prometheus.Histogram
	castBatch     prometheus.Histogram
	requests      *prometheus.HistogramVec
	casts         *prometheus.CounterVec
	rejections    *prometheus.CounterVec
	commands      *prometheus.CounterVec
	forwarded     prometheus.Counter
	leaderChanges prometheus.Counter
	// hangupElections counts elections this node stood in because its leader's process died.
	hangupElections prometheus.Counter
	followerLag     *prometheus.GaugeVec
	failureTol      prometheus.Gauge
	deliveries      *prometheus.CounterVec
	logins          *prometheus.CounterVec
}

var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms .. 16 s

func newMetrics(reg *prometheus.Registry, n *Node) *metrics {
	m := &metrics{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "urne_raft_commit_duration_seconds",
			Help: "Time from proposing a command on the leader until it is committed and applied.", Buckets: latencyBuckets}),
		applyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "urne_fsm_apply_batch_duration_seconds",
			Help: "Time the state machine takes to apply one batch of entries in one transaction.", Buckets: latencyBuckets}),
		castBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "urne_cast_batch_size",
			Help: "On the leader: casts committed together in one CAST_BATCH entry.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "urne_grpc_request_duration_seconds",
			Help: "gRPC unary request latency by method and code.", Buckets: latencyBuckets}, []string{"method", "code"}),
		casts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_casts_total",
			Help: "Casts answered by this node, by result (accepted, replayed, rejected)."}, []string{"result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_rejected_requests_total",
			Help: "Write requests refused, by reason."}, []string{"reason"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_fsm_commands_total",
			Help: "Commands applied by the state machine, by type and response code."}, []string{"type", "code"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "urne_forwarded_requests_total",
			Help: "Writes this follower forwarded to the leader."}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "urne_raft_leadership_changes_total",
			Help: "Times this node gained or lost leadership."}),
		hangupElections: prometheus.NewCounter(prometheus.CounterOpts{Name: "urne_raft_hangup_elections_total",
			Help: "Elections this node stood in at once because its leader hung up and its raft port refused connections."}),
		followerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "urne_raft_follower_lag_entries",
			Help: "On the leader: how many entries each server is behind the leader's last index."}, []string{"server"}),
		failureTol: prometheus.NewGauge(prometheus.GaugeOpts{Name: "urne_autopilot_failure_tolerance",
			Help: "On the leader: how many voters may fail with quorum kept."}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_outbox_deliveries_total",
			Help: "Outbox messages this node tried to deliver as leader, by channel and result."}, []string{"channel", "result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_auth_steps_total",
			Help: "Authentication steps answered by this node, by step and result."}, []string{"step", "result"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.commit, m.applyBatch, m.castBatch, m.requests, m.casts, m.rejections, m.commands, m.forwarded,
		m.leaderChanges, m.hangupElections, m.followerLag, m.failureTol, m.deliveries, m.logins,
		gauge("urne_raft_leader", "1 if this node is the leader.", func() float64 { return b2f(n.raft.State() == raft.Leader) }),
		gauge("urne_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 { return float64(n.raft.State()) }),
		gauge("urne_raft_term", "Current raft term.", func() float64 { return float64(n.currentTerm()) }),
		gauge("urne_raft_last_index", "Last index in this node's log.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("urne_raft_commit_index", "Commit index known to this node.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("urne_fsm_applied_index", "Index applied by the state machine.", func() float64 { return float64(n.fsm.AppliedIndex()) }),
		gauge("urne_keyring_primary_key_id", "Id of the data key new writes use.", func() float64 { return float64(n.keys.PrimaryID()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newDrillCollector(n),
	)
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) observeCommit(d time.Duration) { m.commit.Observe(d.Seconds()) }

// Applied is the state machine's observer.
func (m *metrics) Applied(t fsmpb.CommandType, code fsmpb.ResponseCode) {
	m.commands.WithLabelValues(t.String(), code.String()).Inc()
}

// rejected counts a refused write by its API reason.
func (m *metrics) rejected(err error) {
	reason := "internal"
	for _, r := range reasonOf {
		if errors.Is(err, r.err) {
			reason = r.reason
			break
		}
	}
	m.rejections.WithLabelValues(reason).Inc()
}

// observePilot records autopilot's view, on the leader.
func (m *metrics) observePilot(s *autopilot.State) {
	m.failureTol.Set(float64(s.FailureTolerance))
	var leaderLast uint64
	for _, srv := range s.Servers {
		if srv.State == autopilot.RaftLeader {
			leaderLast = srv.Stats.LastIndex
		}
	}
	for id, srv := range s.Servers {
		lag := 0.0
		if leaderLast > srv.Stats.LastIndex {
			lag = float64(leaderLast - srv.Stats.LastIndex)
		}
		m.followerLag.WithLabelValues(string(id)).Set(lag)
	}
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

// timedFSM measures each batch the state machine applies; it adds nothing to what is applied.
type timedFSM struct {
	*fsm.FSM
	m *metrics
}

func (t timedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	out := t.FSM.ApplyBatch(logs)
	t.m.applyBatch.Observe(time.Since(start).Seconds())
	return out
}

// startMetrics serves /metrics and /health on the metrics address, when one is configured.
func (n *Node) startMetrics() error {
	if n.cfg.Bind.Metrics == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.Bind.Metrics)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if _, id := n.raft.LeaderWithID(); id == "" {
			http.Error(w, "no leader known", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if n.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}
