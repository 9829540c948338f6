package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/paytrail/paytrail/ledger/datadir"
)

// The ingest benchmarks of issue 4: the full webhook path against a bare
// baseline, both driven by ingestBenchClients concurrent HTTP clients
// posting the same pre-signed, distinct generic events. Compare
// BenchmarkIngestFull with BenchmarkIngestBaseline from the same run
// (goal: full ≥ 60% of baseline events/s, full p99 < 50 ms):
//
//	go test ./api -run '^$' -bench 'Ingest(Full|Baseline)$' -benchtime 4000x -count 5

// ingestBenchClients is the concurrency of issue 4's goal.
const ingestBenchClients = 64

// ingestBenchEvent is a body with its Standard Webhooks headers.
type ingestBenchEvent struct {
	body   []byte
	header http.Header
}

// ingestBenchEvents makes n distinct generic events signed for the "dev"
// source with the Standard Webhooks reference library: 8 merchants, 5
// currencies, 256 cards (valid Luhn numbers, so the first event of each
// card creates its cardholder's data key), a third of them with a CVC to
// strip.
func ingestBenchEvents(tb testing.TB, n int) []ingestBenchEvent {
	tb.Helper()
	wh, err := standardwebhooks.NewWebhook(testStandardSecret)
	if err != nil {
		tb.Fatal(err)
	}
	currencies := []string{"USD", "EUR", "GBP", "JPY", "KWD"}
	types := []string{"payment.authorized", "payment.captured", "payment.refunded"}
	run := time.Now().UnixNano()
	now := time.Now()
	out := make([]ingestBenchEvent, n)
	for i := range out {
		card := i % 256
		ev := map[string]any{
			"id":             fmt.Sprintf("evt_bench_%d_%d", run, i),
			"type":           types[(i/256)%len(types)],
			"occurred_at":    now.UTC().Format(time.RFC3339),
			"transaction_id": fmt.Sprintf("pay_bench_%d_%d", run, i%1024),
			"merchant_id":    fmt.Sprintf("m_bench_%d", i%8),
			"amount":         100 + i%50000,
			"currency":       currencies[i%len(currencies)],
			"card":           map[string]any{"number": ingestBenchPAN(card), "exp_month": 1 + card%12, "exp_year": 2030, "brand": "visa"},
			"cardholder":     map[string]any{"name": fmt.Sprintf("Card Holder %d", card), "email": fmt.Sprintf("holder%d@example.com", card), "country": "PL"},
			"ip":             fmt.Sprintf("203.0.113.%d", 1+i%254),
			"metadata":       map[string]any{"order": strconv.Itoa(i)},
		}
		if i%3 == 0 {
			ev["card"].(map[string]any)["cvc"] = "123"
		}
		body, err := json.Marshal(ev)
		if err != nil {
			tb.Fatal(err)
		}
		msgID := fmt.Sprintf("msg_bench_%d_%d", run, i)
		sig, err := wh.Sign(msgID, now, body)
		if err != nil {
			tb.Fatal(err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("webhook-id", msgID)
		h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("webhook-signature", sig)
		out[i] = ingestBenchEvent{body: body, header: h}
	}
	return out
}

// ingestBenchPAN returns a Luhn-valid 16-digit Visa test number for card i.
func ingestBenchPAN(i int) string {
	digits := []byte(fmt.Sprintf("411111%09d", i))
	sum := 0
	for j := range digits {
		d := int(digits[len(digits)-1-j] - '0')
		if j%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return string(append(digits, byte('0'+(10-sum%10)%10)))
}

// ingestBenchLoad posts every event to url from ingestBenchClients clients
// and returns the wall time and the sorted request latencies. Any answer
// but 200 fails tb.
func ingestBenchLoad(tb testing.TB, url string, events []ingestBenchEvent) (time.Duration, []time.Duration) {
	tr := &http.Transport{MaxIdleConns: ingestBenchClients, MaxIdleConnsPerHost: ingestBenchClients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	lat := make([]time.Duration, len(events))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range ingestBenchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(events) {
					return
				}
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(events[i].body))
				if err != nil {
					tb.Error(err)
					return
				}
				req.Header = events[i].header.Clone()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					tb.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					tb.Errorf("event %d: status %d: %s", i, resp.StatusCode, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return elapsed, lat
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportIngest reports events/s and the p50 and p99 latencies.
func reportIngest(b *testing.B, elapsed time.Duration, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	pct := func(p float64) float64 {
		i := min(len(lat)-1, int(float64(len(lat))*p))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

// ingestBenchServer starts the real server the way `paytrail serve` does
// (data dir with real keys, default checkpoint interval, http.Server with
// the production timeouts) on a loopback port, with one "dev" source. It
// returns the webhook URL of "dev" and a func that stops the server and
// closes the data dir.
func ingestBenchServer(tb testing.TB) (url string, stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	node, err := datadir.Open(ctx, datadir.Config{Dir: tb.TempDir(), Create: true, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(Config{
		Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, Logger: logger,
		Sources: []Source{{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 30*time.Second) }()
	return "http://" + ln.Addr().String() + "/v1/webhooks/dev", func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		if err := node.Close(); err != nil {
			tb.Error(err)
		}
	}
}

// BenchmarkIngestFull measures the full webhook path: signature check,
// parse and normalization, SAD stripping, PAN tokenization, per-field
// encryption under the cardholder's data key, and the durable group-commit
// append, with 64 concurrent clients. One op is one event.
func BenchmarkIngestFull(b *testing.B) { benchIngest(b, ingestBenchServer) }

// BenchmarkIngestBaseline is the bare baseline for BenchmarkIngestFull: a
// Gin handler that only reads the body and writes it to Pebble (with the
// ledger store's memtable size) with one synced write per request
// (pebble.Sync, so Pebble's own commit pipeline may share an fsync between
// concurrent writers), driven by the same 64 clients with the same signed
// bodies.
func BenchmarkIngestBaseline(b *testing.B) { benchIngest(b, ingestBaselineServer) }

// benchIngest posts b.N new events to the server start starts.
func benchIngest(b *testing.B, start func(testing.TB) (url string, stop func())) {
	url, stop := start(b)
	defer stop()
	events := ingestBenchEvents(b, b.N)
	b.ResetTimer()
	cpu0 := processCPU()
	elapsed, lat := ingestBenchLoad(b, url, events)
	cpu := processCPU() - cpu0
	b.StopTimer()
	// CPU of the whole process, clients included: the full path and the
	// baseline are CPU-bound to different degrees, and per-event CPU moves
	// less with the machine's noise than throughput does.
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(events)), "cpu_us/event")
	reportIngest(b, elapsed, lat)
}

// BenchmarkIngestVsBaseline runs b.N rounds, each posting 4000 new events
// to a new full server and then the same events to a new baseline server,
// and reports the medians of both throughputs, of the per-round ratio and
// of the full path's p99, so that drift in the machine's load and fsync
// latency hits both sides alike:
//
//	go test ./api -run '^$' -bench IngestVsBaseline -benchtime 5x
func BenchmarkIngestVsBaseline(b *testing.B) {
	const n = 4000
	var fulls, bases, ratios, p99s []float64
	for range b.N {
		events := ingestBenchEvents(b, n)
		url, stop := ingestBenchServer(b)
		elapsed, lat := ingestBenchLoad(b, url, events)
		stop()
		full := float64(n) / elapsed.Seconds()
		p99s = append(p99s, float64(lat[min(len(lat)-1, len(lat)*99/100)])/float64(time.Millisecond))
		url, stop = ingestBaselineServer(b)
		elapsed, _ = ingestBenchLoad(b, url, events)
		stop()
		base := float64(n) / elapsed.Seconds()
		fulls, bases, ratios = append(fulls, full), append(bases, base), append(ratios, full/base)
	}
	b.ReportMetric(median(fulls), "full_events/s")
	b.ReportMetric(median(bases), "baseline_events/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(p99s), "full_p99_ms")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// ingestBaselineServer serves the baseline handler on a loopback port and
// returns its URL and a func that stops it.
func ingestBaselineServer(tb testing.TB) (url string, stop func()) {
	tb.Helper()
	// The ledger store's memtable size, so that the comparison is of the
	// work done per event rather than of flush frequency.
	db, err := pebble.Open(tb.TempDir(), &pebble.Options{Logger: ingestBenchQuietLogger{}, MemTableSize: BaselineMemTableSize})
	if err != nil {
		tb.Fatal(err)
	}
	e := BaselineHandler(db)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String() + "/v1/webhooks/dev", func() {
		hs.Close()
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	}
}

type ingestBenchQuietLogger struct{}

func (ingestBenchQuietLogger) Infof(string, ...any)  {}
func (ingestBenchQuietLogger) Errorf(string, ...any) {}
func (ingestBenchQuietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// TestIngestBenchLoad runs the benchmarks' load once, small, so that a
// broken benchmark setup fails the ordinary test run: every pre-signed
// event is accepted by the real server and by the baseline.
func TestIngestBenchLoad(t *testing.T) {
	events := ingestBenchEvents(t, 300)
	for _, start := range []func(testing.TB) (string, func()){ingestBenchServer, ingestBaselineServer} {
		url, stop := start(t)
		_, lat := ingestBenchLoad(t, url, events)
		stop()
		if lat[0] <= 0 {
			t.Fatalf("%s: not every event was answered", url)
		}
	}
}
