package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// auditMetrics are the collectors of the register, timestamps and integrity check.
type auditMetrics struct {
	stampRequests   *prometheus.CounterVec
	stampLastOK     prometheus.Gauge
	integrityOK     prometheus.Gauge
	integrityLastOK prometheus.Gauge
	integrityFails  *prometheus.CounterVec
	integrityTime   *prometheus.HistogramVec
	alerts          *prometheus.CounterVec
}

func newAuditMetrics(reg *prometheus.Registry, n *Node) *auditMetrics {
	m := &auditMetrics{
		stampRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_timestamp_requests_total",
			Help: "On the leader: attempts to have the register's head stamped, by result (ok, failed)."}, []string{"result"}),
		stampLastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "urne_timestamp_last_success_timestamp_seconds",
			Help: "Unix time of the last trusted timestamp this node obtained and recorded."}),
		integrityOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "urne_integrity_check_success",
			Help: "1 if the last integrity check of this node found nothing wrong, 0 otherwise."}),
		integrityLastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "urne_integrity_last_success_timestamp_seconds",
			Help: "Unix time of the last integrity check of this node that found nothing wrong."}),
		integrityFails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_integrity_failures_total",
			Help: "Integrity check failures, by kind (register, seal, ballot_box, binary, replicas, check)."}, []string{"kind"}),
		integrityTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "urne_integrity_check_duration_seconds",
			Help:    "Time each part of this node's integrity checks took, by kind (register, seal, ballot_box, binary, replicas).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"kind"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "urne_integrity_alerts_total",
			Help: "Integrity alerts, by result: queued (in the replicated outbox), sent (straight to the fallback relay when the cluster could not record them), failed."}, []string{"result"}),
	}
	reg.MustRegister(m.stampRequests, m.stampLastOK, m.integrityOK, m.integrityLastOK, m.integrityFails, m.integrityTime, m.alerts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "urne_register_entries", Help: "Entries of the activity register on this node."},
			func() float64 {
				seq, _, _, err := n.fsm.RegisterHead()
				if err != nil {
					return -1
				}
				return float64(seq)
			}))
	return m
}

func (m *auditMetrics) stamped(ok bool) {
	if !ok {
		m.stampRequests.WithLabelValues("failed").Inc()
		return
	}
	m.stampRequests.WithLabelValues("ok").Inc()
	m.stampLastOK.Set(float64(time.Now().Unix()))
}
