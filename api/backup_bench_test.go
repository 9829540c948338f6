package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// BenchmarkIngestDuringBackup measures ingest throughput while online
// backups stream, against the same server without one. The ledger is
// first filled with PAYTRAIL_BENCH_BACKUP_ENTRIES events (default 20000;
// the figure is 1000000, which takes a while to build, so only on
// demand). Each of b.N rounds posts 4000 new events without a backup and
// 4000 with backups running back to back, alternating which goes first,
// and the medians of both throughputs and of their ratio are reported:
//
//	PAYTRAIL_BENCH_BACKUP_ENTRIES=200000 go test ./api -run '^$' -bench IngestDuringBackup -benchtime 5x -timeout 1h
func BenchmarkIngestDuringBackup(b *testing.B) {
	entries := 20000
	if v := os.Getenv("PAYTRAIL_BENCH_BACKUP_ENTRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		entries = n
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
		Sources: []Source{{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}}},
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

	backupLoop := func(stop <-chan struct{}) (n int, bytes int64) {
		for {
			select {
			case <-stop:
				return n, bytes
			default:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/admin/backup", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return n, bytes
			}
			c, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("backup: %d", resp.StatusCode)
				return n, bytes
			}
			n, bytes = n+1, c
		}
	}
	const perRound = 4000
	var idle, busy, ratios []float64
	var backups int
	var lastBytes int64
	b.ResetTimer()
	for i := range b.N {
		run := func(withBackup bool) float64 {
			events := ingestBenchEvents(b, perRound)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if withBackup {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, c := backupLoop(stop)
					backups += n
					lastBytes = c
				}()
			}
			elapsed, _ := ingestBenchLoad(b, url, events)
			close(stop)
			wg.Wait()
			return perRound / elapsed.Seconds()
		}
		var t0, t1 float64
		if i%2 == 0 {
			t0, t1 = run(false), run(true)
		} else {
			t1, t0 = run(true), run(false)
		}
		idle, busy, ratios = append(idle, t0), append(busy, t1), append(ratios, t1/t0)
	}
	b.StopTimer()
	b.ReportMetric(median(idle), "idle_events/s")
	b.ReportMetric(median(busy), "backup_events/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(float64(backups)/float64(b.N), "backups/round")
	b.ReportMetric(float64(lastBytes)/(1<<20), "backup_MiB")
}
