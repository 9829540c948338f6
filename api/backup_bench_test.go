package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// BenchmarkIngestDuringBackup measures ingest throughput while online
// backups stream, against the same server without one. The ledger is
// first filled with PAYTRAIL_BENCH_BACKUP_ENTRIES events (default 20000;
// the figure is 1000000, which takes a while to build, so only on
// demand). Each of b.N rounds takes one backup while posting events in
// chunks of 500 until it ends, and posts events without a backup,
// alternating which goes first; the medians of both throughputs and of
// their ratio are reported:
//
//	PAYTRAIL_BENCH_BACKUP_ENTRIES=200000 go test ./api -run '^$' -bench IngestDuringBackup -benchtime 5x -timeout 1h
//
// PAYTRAIL_BENCH_BACKUP_RATE sets the server's backup_max_rate in MiB/s
// (-1: no cap) to compare caps.
func BenchmarkIngestDuringBackup(b *testing.B) {
	entries := 20000
	if v := os.Getenv("PAYTRAIL_BENCH_BACKUP_ENTRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		entries = n
	}
	var rate int64 // the server's default
	if v := os.Getenv("PAYTRAIL_BENCH_BACKUP_RATE"); v != "" {
		mib, err := strconv.Atoi(v) // MiB/s, -1 for no cap
		if err != nil {
			b.Fatal(err)
		}
		rate = int64(mib) << 20
		if mib < 0 {
			rate = -1
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	node, err := datadir.Open(ctx, datadir.Config{Dir: b.TempDir(), Create: true, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{
		Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, Logger: logger, DataDir: node.Dir,
		Sources:       []Source{{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}}},
		BackupMaxRate: rate,
	})
	if err != nil {
		b.Fatal(err)
	}
	_, token, err := srv.Principals().Create(ctx, auth.CLIActor, "bench admin", auth.RoleAdmin, []string{"*"})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 30*time.Second) }()
	defer func() {
		cancel()
		<-done
		node.Close()
	}()
	base := "http://" + ln.Addr().String()
	url := base + "/v1/webhooks/dev"
	for left := entries; left > 0; left -= 10000 {
		ingestBenchLoad(b, url, ingestBenchEvents(b, min(left, 10000)))
	}
	b.Logf("ledger filled with %d entries", node.Ledger.Size())

	backupOnce := func() (int64, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("backup: %d", resp.StatusCode)
		}
		return n, err
	}
	// One round: one backup, with events posted in chunks until it has
	// streamed its last byte (at least one chunk), then as many events
	// without a backup; which half goes first alternates.
	const chunk = 500
	var idle, busy, ratios []float64
	var lastBytes int64
	var backupSecs []float64
	b.ResetTimer()
	for i := range b.N {
		during := func() (float64, int) {
			done := make(chan error, 1)
			t0 := time.Now()
			go func() {
				n, err := backupOnce()
				lastBytes = n
				backupSecs = append(backupSecs, time.Since(t0).Seconds())
				done <- err
			}()
			posted := 0
			var spent time.Duration
			for {
				elapsed, _ := ingestBenchLoad(b, url, ingestBenchEvents(b, chunk))
				posted, spent = posted+chunk, spent+elapsed
				select {
				case err := <-done:
					if err != nil {
						b.Fatal(err)
					}
					return float64(posted) / spent.Seconds(), posted
				default:
				}
			}
		}
		without := func(n int) float64 {
			elapsed, _ := ingestBenchLoad(b, url, ingestBenchEvents(b, n))
			return float64(n) / elapsed.Seconds()
		}
		var t0, t1 float64
		if i%2 == 0 {
			var n int
			t1, n = during()
			t0 = without(n)
		} else {
			t0 = without(4 * chunk)
			t1, _ = during()
		}
		idle, busy, ratios = append(idle, t0), append(busy, t1), append(ratios, t1/t0)
	}
	b.StopTimer()
	b.ReportMetric(median(idle), "idle_events/s")
	b.ReportMetric(median(busy), "backup_events/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(backupSecs), "backup_s")
	b.ReportMetric(float64(lastBytes)/(1<<20), "backup_MiB")
}
