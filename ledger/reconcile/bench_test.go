package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// genLedger is a Ledger of n synthetic transactions computed from their
// index, so that it takes no memory of its own and a benchmark measures
// this package alone. Transaction i has a Stripe-length id, genPI followed
// by i in 8 digits (alt id genCh...), is of merchant i%genMerchants and was
// captured at genBase + i%86400 seconds.
type genLedger struct{ n int }

const (
	genMerchants = 16
	genPI        = "pi_3QbTq2Lkdf8Zx1a" // 26-byte ids, like Stripe's
	genCh        = "ch_3QbTq2Lkdf8Zx1a"
)

var genBase = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

var genCurrencies = [...]string{"USD", "EUR", "JPY"}

// genID returns prefix followed by i in 8 zero-padded digits, cheaper than
// fmt so that the benchmark measures Run rather than its fixtures.
func genID(prefix string, i int) string {
	var b [32]byte
	n := copy(b[:], prefix)
	for d := n + 7; d >= n; d-- {
		b[d] = byte('0' + i%10)
		i /= 10
	}
	return string(b[:n+8])
}

func (g genLedger) tx(i int) Tx {
	tx := Tx{
		TransactionID: genID(genPI, i),
		AltIDs:        []string{genID(genCh, i)},
		MerchantID:    "m_" + strconv.Itoa(i%genMerchants),
		Currency:      genCurrencies[i%len(genCurrencies)],
		Status:        "captured",
		Captured:      int64(100 + i%10000),
		CapturedAt:    genBase.Add(time.Duration(i%86400) * time.Second),
	}
	if i%50 == 0 {
		tx.Status, tx.Refunded = "refunded", tx.Captured/2
	}
	return tx
}

func (g genLedger) Transaction(ctx context.Context, id string) (Tx, bool, error) {
	num, ok := strings.CutPrefix(id, genPI)
	if !ok {
		num, ok = strings.CutPrefix(id, genCh)
	}
	i, err := strconv.Atoi(num)
	if !ok || err != nil || i < 0 || i >= g.n {
		return Tx{}, false, nil
	}
	return g.tx(i), true, nil
}

func (g genLedger) CapturedBetween(ctx context.Context, merchant string, from, to time.Time, fn func(Tx) error) error {
	m, err := strconv.Atoi(strings.TrimPrefix(merchant, "m_"))
	if err != nil {
		return nil
	}
	for i := m; i < g.n; i += genMerchants {
		tx := g.tx(i)
		if tx.CapturedAt.Before(from) || !tx.CapturedAt.Before(to) {
			continue
		}
		if err := fn(tx); err != nil {
			return err
		}
	}
	return nil
}

// genReport generates, without holding it in memory, a generic report
// against genLedger{n}: a charge row per transaction except every 997th
// (missing_in_report), a refund row for every 50th, an amount off by one
// unit for every 1000th, and a row unknown to the ledger every 5000th.
type genReport struct {
	n, i int
	buf  bytes.Buffer
	g    genLedger
}

func newGenReport(n int) *genReport {
	r := &genReport{n: n, g: genLedger{n}}
	r.buf.WriteString(genericHeader)
	return r
}

func (r *genReport) Read(p []byte) (int, error) {
	for r.buf.Len() < len(p) && r.i < r.n {
		i := r.i
		r.i++
		tx := r.g.tx(i)
		if i%997 != 0 {
			amount := tx.Captured
			if i%1000 == 0 {
				amount++
			}
			r.line(tx.TransactionID, tx, TypeCharge, amount)
		}
		if tx.Refunded != 0 {
			r.line(tx.AltIDs[0], tx, TypeRefund, tx.Refunded)
		}
		if i%5000 == 0 {
			r.line(genID("zz_", i), tx, TypeCharge, 100)
		}
	}
	if r.buf.Len() == 0 {
		return 0, io.EOF
	}
	return r.buf.Read(p)
}

// line appends one generic row for tx under id.
func (r *genReport) line(id string, tx Tx, typ string, amount int64) {
	b := r.buf.AvailableBuffer()
	b = append(b, id...)
	b = append(b, ',')
	b = append(b, tx.MerchantID...)
	b = append(b, ',')
	b = append(b, typ...)
	b = append(b, ',')
	if tx.Currency == "JPY" {
		b = strconv.AppendInt(b, amount, 10)
	} else {
		b = strconv.AppendInt(b, amount/100, 10)
		b = append(b, '.', byte('0'+amount%100/10), byte('0'+amount%10))
	}
	b = append(b, ',')
	b = append(b, tx.Currency...)
	b = append(b, ',')
	b = tx.CapturedAt.AppendFormat(b, time.RFC3339)
	b = append(b, '\n')
	r.buf.Write(b)
}

// TestGenReport checks the generator and genLedger against each other on a
// small size, so the benchmark's figures mean what they say.
func TestGenReport(t *testing.T) {
	const n = 10_000
	r, err := NewReader(FormatGeneric, newGenReport(n), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), genLedger{n}, r, Options{InScope: AllMerchants, MaxExceptions: -1})
	if err != nil {
		t.Fatal(err)
	}
	missing := (n + 996) / 997 // i%997 == 0
	want := Counts{
		Matched:         n - missing - 9 + n/50, // less the amounts off (i%1000, but not 0 which is missing)
		AmountMismatch:  9,
		MissingInLedger: n / 5000,
		MissingInReport: missing,
	}
	if s.Counts != want {
		t.Errorf("counts = %+v, want %+v", s.Counts, want)
	}
}

// peakRSS returns the process's peak resident set size in bytes (Linux), or
// 0.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) * 1024
		}
	}
	return 0
}

// BenchmarkRun1M reconciles a generated report of about a million rows
// (998,996 charges, 20,000 refunds, 200 unknown ids) against a genLedger of
// 1,000,000 transactions. It reports
// ns per row, the process CPU time per run (all threads, GC included; less
// sensitive to a busy machine than wall time), the largest heap in use seen
// at each Progress call, and the process's peak RSS:
//
//	go test -run '^$' -bench Run1M -benchtime 1x -count 5 ./ledger/reconcile/
func BenchmarkRun1M(b *testing.B) {
	const n = 1_000_000
	b.ReportAllocs()
	var rows int
	var peakHeap uint64
	cpu0 := cpuSeconds()
	for b.Loop() {
		r, err := NewReader(FormatGeneric, newGenReport(n), "")
		if err != nil {
			b.Fatal(err)
		}
		sample := func(int) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
		s, err := Run(context.Background(), genLedger{n}, r, Options{InScope: AllMerchants, Progress: sample})
		if err != nil {
			b.Fatal(err)
		}
		sample(0)
		rows = s.Rows
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakRSS()/(1<<20), "peak-RSS-MiB")
}

// BenchmarkReaderGeneric measures parsing alone.
func BenchmarkReaderGeneric(b *testing.B) {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, newGenReport(100_000)); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var rows int
	for b.Loop() {
		r, _ := NewReader(FormatGeneric, bytes.NewReader(data), "")
		rows = 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
