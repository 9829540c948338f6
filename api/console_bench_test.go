package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// consoleBenchEntries is the ledger size of BenchmarkConsoleTransactionsPage:
// PAYTRAIL_BENCH_CONSOLE_ENTRIES, default 5000 (CI-sized). The issue's
// figure is for a million entries, built on demand only:
//
//	PAYTRAIL_BENCH_CONSOLE_ENTRIES=1000000 go test ./api -run '^$' -bench ConsoleTransactionsPage -benchtime 200x -timeout 60m
func consoleBenchEntries(b *testing.B) int {
	if v := os.Getenv("PAYTRAIL_BENCH_CONSOLE_ENTRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PAYTRAIL_BENCH_CONSOLE_ENTRIES=%q is not a positive number", v)
		}
		return n
	}
	return 5000
}

// BenchmarkConsoleTransactionsPage measures one console page of 50
// transactions, server-side, end to end over loopback HTTP: the session
// check, the internal API call (index scan, 50 transaction states, their
// masked cards decrypted, the synced access entry) and the HTML. The API
// read alone is reported as api_ms for comparison. The ledger is filled
// through the real webhook path first (not timed).
func BenchmarkConsoleTransactionsPage(b *testing.B) {
	h, cc := consoleBenchServer(b)
	api := func() time.Duration {
		t0 := time.Now()
		if r := h.do("bench", http.MethodGet, "/v1/transactions?limit=50", nil); r.Status != http.StatusOK {
			b.Fatal(r.Status)
		}
		return time.Since(t0)
	}
	pages, apis := make([]float64, 0, b.N), make([]float64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r := cc.get("/console/transactions")
		if r.Status != http.StatusOK {
			b.Fatalf("page: %d", r.Status)
		}
		pages = append(pages, float64(time.Since(t0).Microseconds())/1000)
		b.StopTimer()
		apis = append(apis, float64(api().Microseconds())/1000)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(pages)
	b.ReportMetric(median(pages), "page_p50_ms")
	b.ReportMetric(pages[len(pages)*99/100], "page_p99_ms")
	b.ReportMetric(median(apis), "api_p50_ms")
	b.ReportMetric(float64(h.srv.ledger.Size()), "entries")
}

// consoleBench is the benchmark's server, built once per test binary: the
// benchmark function runs more than once (b.N = 1 first), and a ledger of
// a million entries takes minutes to fill. TestMain closes it.
var consoleBench struct {
	once  sync.Once
	h     *harness
	cc    *consoleClient
	close func()
	err   error
}

func consoleBenchServer(b *testing.B) (*harness, *consoleClient) {
	consoleBench.once.Do(func() {
		n := consoleBenchEntries(b)
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "paytrail-console-bench-")
		if err != nil {
			consoleBench.err = err
			return
		}
		logger := slog.New(slog.DiscardHandler)
		node, err := datadir.Open(ctx, datadir.Config{Dir: dir, Create: true, Logger: logger})
		if err != nil {
			consoleBench.err = err
			return
		}
		srv, err := New(Config{
			Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, Logger: logger,
			Sources: []Source{{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}}},
		})
		if err != nil {
			consoleBench.err = err
			return
		}
		hs := httptest.NewServer(srv.Handler())
		consoleBench.close = func() { hs.Close(); node.Close(); os.RemoveAll(dir) }
		start := time.Now()
		for done := 0; done < n; {
			batch := min(20000, n-done)
			ingestBenchLoad(b, hs.URL+"/v1/webhooks/dev", ingestBenchEvents(b, batch))
			done += batch
		}
		b.Logf("ledger of %d entries built in %s", node.Ledger.Size(), time.Since(start).Round(time.Second))
		_, tok, err := srv.Principals().Create(ctx, auth.CLIActor, "bench", auth.RoleAuditor, []string{"*"})
		if err != nil {
			consoleBench.err = err
			return
		}
		h := &harness{t: b, http: hs, srv: srv, tokens: map[string]string{"bench": tok}}
		cc := newConsoleClient(b, h)
		cc.signIn("bench")
		consoleBench.h, consoleBench.cc = h, cc
	})
	if consoleBench.err != nil {
		b.Fatal(consoleBench.err)
	}
	// Each run reports through its own b.
	consoleBench.h.t, consoleBench.cc.t = b, b
	return consoleBench.h, consoleBench.cc
}
