package api

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/witness"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// BenchmarkIngestWitnessedVsPlain runs b.N rounds, each posting 4000 new
// events to a new full server without witnesses and the same events to a
// new full server with three witnesses (one cosigning every checkpoint,
// one stalling every request until its timeout, one refusing
// connections), alternating, and reports the medians of both throughputs
// and of the per-round ratio (goal: witnessed within 5% of plain), and the
// medians of CPU time per event:
//
//	go test ./api -run '^$' -bench IngestWitnessedVsPlain -benchtime 7x
func BenchmarkIngestWitnessedVsPlain(b *testing.B) {
	const n = 4000
	var plains, witnessed, ratios, plainCPU, witnessedCPU []float64
	for round := range b.N {
		events := ingestBenchEvents(b, n)
		var p, w float64
		for i := range 2 {
			if (i+round)%2 == 0 { // alternate which goes first
				url, stop := ingestBenchServer(b)
				cpu0 := processCPU()
				elapsed, _ := ingestBenchLoad(b, url, events)
				plainCPU = append(plainCPU, float64((processCPU()-cpu0).Microseconds())/n)
				stop()
				p = float64(n) / elapsed.Seconds()
			} else {
				url, stop := ingestWitnessedServer(b)
				cpu0 := processCPU()
				elapsed, _ := ingestBenchLoad(b, url, events)
				witnessedCPU = append(witnessedCPU, float64((processCPU()-cpu0).Microseconds())/n)
				stop()
				w = float64(n) / elapsed.Seconds()
			}
			events = ingestBenchEvents(b, n) // new ids for the second server
		}
		plains, witnessed, ratios = append(plains, p), append(witnessed, w), append(ratios, w/p)
		b.Logf("round %d: plain %.0f events/s, witnessed %.0f events/s, ratio %.3f", round, p, w, w/p)
	}
	b.ReportMetric(median(plains), "plain_events/s")
	b.ReportMetric(median(witnessed), "witnessed_events/s")
	b.ReportMetric(median(ratios), "ratio")
	// CPU per event of the whole process (clients and witnesses
	// included) moves less with the machine's load than throughput.
	b.ReportMetric(median(plainCPU), "plain_cpu_us/event")
	b.ReportMetric(median(witnessedCPU), "witnessed_cpu_us/event")
}

// ingestWitnessedServer is ingestBenchServer with three witnesses
// configured: a good one, a stalling one and a dead one.
func ingestWitnessedServer(tb testing.TB) (url string, stop func()) {
	tb.Helper()
	good := newCosigningWitness(tb, "witness.example/good")
	stalled := newCosigningWitness(tb, "witness.example/stalled")
	stalled.stall.Store(true)
	dead := newCosigningWitness(tb, "witness.example/dead")
	dead.http.Close() // connections refused
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	node, err := datadir.Open(ctx, datadir.Config{Dir: tb.TempDir(), Create: true, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(Config{
		Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, Logger: logger,
		Sources: []Source{{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}}},
		Witnesses: []witness.Endpoint{good.endpoint("good"), stalled.endpoint("stalled"),
			dead.endpoint("dead")},
		WitnessQuorum: 1,
		WitnessTiming: witness.Timing{Timeout: 2 * time.Second},
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

// TestIngestWitnessedBenchLoad runs the witnessed benchmark's load once,
// small, so a broken setup fails the ordinary test run.
func TestIngestWitnessedBenchLoad(t *testing.T) {
	url, stop := ingestWitnessedServer(t)
	_, lat := ingestBenchLoad(t, url, ingestBenchEvents(t, 100))
	stop()
	if lat[0] <= 0 {
		t.Fatal("not every event was answered")
	}
}
