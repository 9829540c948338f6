package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrail/paytrail/ledger"
)

// metrics are the server's Prometheus series. Labels never carry cardholder
// data: only route templates, status codes, source names and results.
type metrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	webhooks      *prometheus.CounterVec
	badSignatures *prometheus.CounterVec
	// rejected counts work refused to bound what strangers can cost, by
	// reason (one of the reject* constants).
	rejected *prometheus.CounterVec
	// coalescedDenials counts failed authentication attempts recorded
	// in coalesced entries rather than in entries of their own.
	coalescedDenials prometheus.Counter
}

// The reasons of paytrail_rejected_total.
const (
	rejectConnections   = "unauthenticated_connections"
	rejectWebhookBuffer = "webhook_buffer"
	rejectBodyTimeout   = "body_timeout"
)

func newMetrics(reg *prometheus.Registry, l *ledger.Ledger, s *Server) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paytrail_http_requests_total", Help: "HTTP requests by route template and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "paytrail_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paytrail_webhook_events_total", Help: "Webhook deliveries by source and result.",
		}, []string{"source", "result"}),
		badSignatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paytrail_webhook_signature_failures_total", Help: "Webhook deliveries rejected for a missing, bad or stale signature.",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paytrail_rejected_total", Help: "Connections and requests refused to bound the work of unauthenticated clients, by reason.",
		}, []string{"reason"}),
		coalescedDenials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paytrail_access_denials_coalesced_total", Help: "Failed authentication attempts recorded in coalesced access entries.",
		}),
	}
	for _, r := range []string{rejectConnections, rejectWebhookBuffer, rejectBodyTimeout} {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.latency, m.webhooks, m.badSignatures, m.rejected, m.coalescedDenials,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "paytrail_webhook_buffered_bytes", Help: "Webhook body bytes reserved by deliveries being received (bounded by max_webhook_buffer).",
		}, func() float64 { return float64(s.webhookBuf.used.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "paytrail_unauthenticated_connections", Help: "Open connections on which no request has authenticated.",
		}, func() float64 { return float64(s.unauthConns.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "paytrail_ledger_entries", Help: "Committed ledger entries (the Merkle tree size).",
		}, func() float64 { return float64(l.Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "paytrail_ledger_healthy", Help: "1 while the ledger accepts appends.",
		}, func() float64 {
			if l.Healthy() != nil {
				return 0
			}
			return 1
		}),
	)
	if c := s.cluster; c != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "paytrail_cluster_applied", Help: "The last position of the cluster's stream this node applied.",
			}, func() float64 { return float64(l.Applied()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "paytrail_cluster_lag", Help: "Records of the cluster's stream this node has yet to apply.",
			}, func() float64 { return float64(c.Lag()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "paytrail_cluster_halted", Help: "1 once this node halted on a checkpoint root the cluster disagrees with.",
			}, func() float64 {
				if c.Halted() != nil {
					return 1
				}
				return 0
			}),
		)
	}
	return m
}

// middleware counts and times every request. Each label takes its value
// from a fixed set, whatever the client sends: a series per distinct
// value would let anyone grow /metrics (and the server's memory) without
// bound, and would copy what they typed, card numbers included, into it.
func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route, method := routeLabel(c), methodLabel(c.Request.Method)
		m.requests.WithLabelValues(route, method, statusLabel(c.Writer.Status())).Inc()
		m.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// routeLabel is the route template the request matched (never the path
// with its parameters filled in), or "unmatched".
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// methodLabel is the method if it is one of RFC 9110's and PATCH, or
// "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// statusLabel is the status code if net/http knows it, or "other".
func statusLabel(code int) string {
	if http.StatusText(code) == "" {
		return "other"
	}
	return strconv.Itoa(code)
}
