package api

import (
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
}

func newMetrics(reg *prometheus.Registry, l *ledger.Ledger) *metrics {
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
	}
	reg.MustRegister(m.requests, m.latency, m.webhooks, m.badSignatures,
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
	return m
}

func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		m.latency.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
	}
}
