package reconcile

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// BenchmarkEndToEnd1M reconciles the generated report of BenchmarkRun1M
// (about 1.02 million rows) against a real data dir holding genLedger's
// 1,000,000 transactions as 1,020,000 payment entries with sealed fields of
// realistic sizes, through RunAndStore: the real ledger adapter on a Pebble
// snapshot, the exceptions digest and the stored entry. Each iteration
// opens the data dir, runs, and closes it.
//
// Building the data dir takes minutes, so it is kept where
// PAYTRAIL_RECON_BENCH_DIR says (built on first use; a temp dir otherwise),
// and that dir then also serves the command line end to end:
//
//	PAYTRAIL_RECON_BENCH_DIR=/tmp/recon1m go test -run '^$' -bench EndToEnd1M -benchtime 1x -count 5 ./ledger/reconcile/
//	/usr/bin/time -v paytrail reconcile --data /tmp/recon1m --format generic /tmp/recon1m/report.csv
//
// It reports the process's peak RSS during the runs (the high-water mark is
// reset after the build), the largest Go heap in use seen at each Progress
// call, and the process CPU time per run.
func BenchmarkEndToEnd1M(b *testing.B) {
	const n = 1_000_000
	dir := os.Getenv("PAYTRAIL_RECON_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	reportPath := filepath.Join(dir, "report.csv")
	if _, err := os.Stat(filepath.Join(dir, "bench-ready")); err != nil {
		buildBenchDataDir(b, dir, reportPath, n)
	}
	want := genCounts(n)

	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	var peakHeap uint64
	sample := func(int) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
	}
	ctx := context.Background()
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for b.Loop() {
		node, err := datadir.Open(ctx, datadir.Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(reportPath)
		if err != nil {
			b.Fatal(err)
		}
		run, err := RunAndStore(ctx, node.Ledger, RunConfig{
			Format: FormatGeneric, Report: f, InScope: AllMerchants, Scope: []string{"*"},
			Operator: Operator{ID: "bench"}, Time: time.Now(), Policy: 1, Progress: sample,
		})
		f.Close()
		sample(0)
		if cerr := node.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		if run.Counts != want {
			b.Fatalf("counts = %+v, want %+v", run.Counts, want)
		}
	}
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakRSS()/(1<<20), "peak-RSS-MiB")
}

// genCounts is what Run finds for newGenReport(n) against genLedger{n}, or
// a ledger holding the same transactions.
func genCounts(n int) Counts {
	var c Counts
	for i := range n {
		switch {
		case i%997 == 0:
			c.MissingInReport++
		case i%1000 == 0:
			c.AmountMismatch++
		default:
			c.Matched++
		}
		if i%50 == 0 {
			c.Matched++ // the refund row
		}
		if i%5000 == 0 {
			c.MissingInLedger++
		}
	}
	return c
}

// buildBenchDataDir creates a data dir holding genLedger{n} as payment
// entries (a capture per transaction, plus a refund for every 50th), and
// the generated report next to it.
func buildBenchDataDir(b *testing.B, dir, reportPath string, n int) {
	b.Helper()
	start := time.Now()
	ctx := context.Background()
	node, err := datadir.Open(ctx, datadir.Config{Dir: dir, Create: true})
	if err != nil {
		b.Fatal(err)
	}
	g := genLedger{n}
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				tx := g.tx(i)
				recs := []ledger.Record{benchPaymentRecord(tx, ledger.TypeCaptured, "captured", tx.Captured, tx.CapturedAt)}
				if tx.Refunded != 0 {
					recs = append(recs, benchPaymentRecord(tx, ledger.TypeRefunded, tx.Status, tx.Refunded, tx.CapturedAt.Add(time.Hour)))
				}
				for _, r := range recs {
					if _, err := node.Ledger.Append(ctx, r); err != nil {
						b.Error(err)
						failed.Store(true)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := node.Close(); err != nil || failed.Load() {
		b.Fatalf("failed to build the bench ledger: %v", err)
	}
	f, err := os.Create(reportPath)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, newGenReport(n)); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-ready"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d transactions in %s", n, time.Since(start).Round(time.Second))
}

// benchPaymentRecord is a payment event of tx with sealed fields of the
// sizes ingestion writes (random, so that Pebble cannot compress them away).
func benchPaymentRecord(tx Tx, typ, status string, amount int64, at time.Time) ledger.Record {
	sealed := map[string][]byte{}
	for f, size := range map[string]int{"card_token": 80, "bin": 34, "last4": 32, "cardholder_name": 45, "email": 60, "ip": 40, "exp_month": 30, "exp_year": 32, "raw": 450} {
		v := make([]byte, size)
		rand.Read(v)
		sealed[f] = v
	}
	id := ledger.NewRecordID()
	return ledger.Record{Kind: ledger.KindPayment, ID: id, Time: at, Policy: 1, Body: &ledger.PaymentBody{
		Source: "bench", EventID: id, Type: typ, TransactionID: tx.TransactionID, AltIDs: tx.AltIDs, MerchantID: tx.MerchantID,
		Amount: amount, Currency: tx.Currency, Status: status, OccurredAt: at, Brand: "visa",
		DataKey: "dk_0123456789abcdef0123456789abcdef", Sealed: sealed,
	}}
}

// resetPeakRSS resets the kernel's peak RSS of this process to its current
// RSS (Linux; elsewhere a no-op), so peakRSS measures from here.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// TestGenCounts checks genCounts against a run over genLedger, so that the
// end-to-end benchmark's check means what it says.
func TestGenCounts(t *testing.T) {
	const n = 20_000
	r, err := NewReader(FormatGeneric, newGenReport(n), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), genLedger{n}, r, Options{InScope: AllMerchants, MaxExceptions: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := genCounts(n); s.Counts != want {
		t.Errorf("counts = %+v, want %+v", s.Counts, want)
	}
}
