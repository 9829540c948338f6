package ledger

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/proof"
)

// BenchmarkReceipt measures what GET /v1/entries/{seq}/receipt reads and
// builds for a random entry of a large ledger: the entry, its inclusion
// proof from stored hashes, the cosigned checkpoint, and the tlog-proof
// encoding (goal: under 5 ms at 1M entries). The ledger is built once
// per process, on demand only (benchmarks never run in go test ./...):
//
//	go test ./ledger -run '^$' -bench Receipt -benchtime 2000x
//
// PAYTRAIL_BENCH_RECEIPT_ENTRIES sets its size (default 1048576).
func BenchmarkReceipt(b *testing.B) {
	l, size := receiptBenchLedger(b)
	rng := rand.New(rand.NewPCG(1, 2))
	cp, err := l.LatestCheckpoint()
	if err != nil {
		b.Fatal(err)
	}
	cpSize, _ := checkpointSize(cp)
	b.ResetTimer()
	for range b.N {
		seq := rng.Uint64N(cpSize)
		e, err := l.Entry(seq)
		if err != nil {
			b.Fatal(err)
		}
		hashes, err := l.InclusionProof(seq, cpSize)
		if err != nil {
			b.Fatal(err)
		}
		c, err := l.CosignedCheckpoint(cpSize)
		if err != nil {
			b.Fatal(err)
		}
		p := proof.TLogProof{Index: seq, Checkpoint: c, ExtraData: e.Bytes(), Hashes: make([][sha256.Size]byte, len(hashes))}
		for i, h := range hashes {
			p.Hashes[i] = [sha256.Size]byte(h)
		}
		_ = p.Marshal()
	}
	b.ReportMetric(float64(size), "entries")
}

var receiptBench struct {
	once sync.Once
	dir  string
	l    *Ledger
	err  error
}

// receiptBenchLedger builds (once) a ledger of ~200-byte admin entries,
// appended by 64 concurrent callers through the group committer.
func receiptBenchLedger(b *testing.B) (*Ledger, uint64) {
	n := 1 << 20
	if v, err := strconv.Atoi(os.Getenv("PAYTRAIL_BENCH_RECEIPT_ENTRIES")); err == nil && v > 0 {
		n = v
	}
	rb := &receiptBench
	rb.once.Do(func() {
		if rb.dir, rb.err = os.MkdirTemp("", "paytrail-receipt-bench-"); rb.err != nil {
			return
		}
		var keys testKeys
		rb.l = openTest(b, rb.dir, &keys)
		start := time.Now()
		runConcurrent(n, 64, func() {
			if _, err := rb.l.Append(context.Background(), Record{Kind: KindAdmin, ID: newID(), Time: time.Now().UTC(), Policy: 1,
				Body: AdminBody{ActorID: "bench", ActorName: "receipt bench", Action: "bench.append", Target: "t"}}); err != nil {
				rb.err = err
			}
		})
		// A checkpoint covering everything, then a reopen: the reads
		// come from the store as after a restart.
		rb.l.Close()
		rb.l = openTest(b, rb.dir, &keys)
		b.Logf("built a ledger of %d entries in %s", rb.l.Size(), time.Since(start).Round(time.Second))
	})
	if rb.err != nil {
		b.Fatal(rb.err)
	}
	return rb.l, rb.l.Size()
}

// TestMain removes the receipt benchmark's ledger, if one was built.
func TestMain(m *testing.M) {
	code := m.Run()
	if receiptBench.l != nil {
		receiptBench.l.Close()
	}
	if receiptBench.dir != "" {
		os.RemoveAll(receiptBench.dir)
	}
	os.Exit(code)
}
