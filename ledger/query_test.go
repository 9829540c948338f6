package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

var queryT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// queryPayment is a payment record of transaction tx at merchant m,
// occurring at queryT0+at, linked to subjects.
func queryPayment(tx, m, typ string, amount int64, at time.Duration, subjects ...string) Record {
	r := paymentRecord(tx, typ, amount, queryT0.Add(at))
	b := r.Body.(PaymentBody)
	b.MerchantID = m
	r.Body = b
	if len(subjects) > 0 {
		r.Link = &SubjectLink{TransactionID: tx, DataKey: "dk_" + tx, Subjects: subjects}
	}
	return r
}

func appendAll(t testing.TB, l *Ledger, recs ...Record) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, r := range recs {
		res, err := l.Append(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, res.Seq)
	}
	return seqs
}

func txIDs(items []*TxState) []string {
	out := []string{}
	for _, s := range items {
		out = append(out, s.TransactionID)
	}
	return out
}

func TestTransactionsQuery(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	h := time.Hour
	appendAll(t, l,
		queryPayment("a1", "m1", TypeCaptured, 100, 1*h, "card:x"),
		queryPayment("a2", "m2", TypeAuthorized, 200, 2*h),
		queryPayment("b1", "m3", TypeCaptured, 300, 2*h, "card:x"),
		queryPayment("a3", "m1", TypeAuthorized, 400, 3*h, "card:x"),
		queryPayment("a3", "m1", TypeCaptured, 400, 3*h+time.Minute),
		queryPayment("a3", "m1", TypeRefunded, 100, 3*h+2*time.Minute),
		queryPayment("a0", "m2", TypeCaptured, 500, 4*h, "card:y"),
		// An event that occurred earlier moves a0's first_seen back.
		queryPayment("a0", "m2", TypeAuthorized, 500, -1*h),
	)
	tests := []struct {
		name string
		q    TxQuery
		want []string
	}{
		{"zero query selects nothing", TxQuery{}, nil},
		{"all merchants", TxQuery{AllMerchants: true}, []string{"a0", "a1", "a2", "b1", "a3"}},
		{"one merchant", TxQuery{Merchants: []string{"m1"}}, []string{"a1", "a3"}},
		{"merged merchants keep the order", TxQuery{Merchants: []string{"m3", "m1"}}, []string{"a1", "b1", "a3"}},
		{"duplicate merchants", TxQuery{Merchants: []string{"m1", "m1"}}, []string{"a1", "a3"}},
		{"unknown merchant", TxQuery{Merchants: []string{"m9"}}, nil},
		{"from is inclusive", TxQuery{AllMerchants: true, From: queryT0.Add(2 * h)}, []string{"a2", "b1", "a3"}},
		{"to is exclusive", TxQuery{AllMerchants: true, To: queryT0.Add(2 * h)}, []string{"a0", "a1"}},
		{"from and to per merchant", TxQuery{Merchants: []string{"m2"}, From: queryT0, To: queryT0.Add(3 * h)}, []string{"a2"}},
		{"empty range", TxQuery{AllMerchants: true, From: queryT0.Add(h), To: queryT0.Add(h)}, nil},
		{"status", TxQuery{AllMerchants: true, Status: "refunded"}, []string{"a3"}},
		{"type", TxQuery{AllMerchants: true, Type: TypeAuthorized}, []string{"a0", "a2", "a3"}},
		{"after a tie", TxQuery{AllMerchants: true, After: &TxPos{queryT0.Add(2 * h), "a2"}}, []string{"b1", "a3"}},
		{"after per merchant", TxQuery{Merchants: []string{"m1", "m3"}, After: &TxPos{queryT0.Add(2 * h), "b1"}}, []string{"a3"}},
		{"subject", TxQuery{AllMerchants: true, Subjects: []string{"card:x"}}, []string{"a1", "b1", "a3"}},
		{"subject in scope", TxQuery{Merchants: []string{"m1"}, Subjects: []string{"card:x"}}, []string{"a1", "a3"}},
		{"subjects merged", TxQuery{AllMerchants: true, Subjects: []string{"card:y", "card:x"}}, []string{"a0", "a1", "b1", "a3"}},
		{"subject with filters", TxQuery{AllMerchants: true, Subjects: []string{"card:x"}, From: queryT0.Add(2 * h), Status: "captured"}, []string{"b1"}},
		{"subject after", TxQuery{AllMerchants: true, Subjects: []string{"card:x"}, After: &TxPos{queryT0.Add(2 * h), "b1"}}, []string{"a3"}},
		{"unknown subject", TxQuery{AllMerchants: true, Subjects: []string{"card:z"}}, nil},
		{"subject without scope", TxQuery{Subjects: []string{"card:x"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Limit = 100
			page, err := l.Transactions(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := txIDs(page.Items); !slices.Equal(got, append([]string{}, tt.want...)) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if page.Next != nil {
				t.Errorf("Next = %+v after the whole range", page.Next)
			}
		})
	}

	a3, err := l.DurableTransaction("a3")
	if err != nil {
		t.Fatal(err)
	}
	if a3.Captured != 400 || a3.Refunded != 100 || a3.Status != "refunded" {
		t.Errorf("a3 = %+v", a3)
	}
	if _, err := l.Transactions(context.Background(), TxQuery{AllMerchants: true}); err == nil {
		t.Error("a query without a limit succeeded")
	}
}

// TestTransactionsPaging pages through many transactions with small pages
// and a small scan budget, and checks the pages add up to the full list.
func TestTransactionsPaging(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	var recs []Record
	for i := range 60 {
		typ := TypeCaptured
		if i%4 == 0 {
			typ = TypeAuthorized
		}
		// Pairs of transactions share a time.
		at := time.Duration(i/2) * time.Minute
		recs = append(recs, queryPayment(fmt.Sprintf("tx%02d", 59-i), fmt.Sprintf("m%d", i%3), typ, int64(i), at))
	}
	appendConcurrently(t, l, recs)

	for _, tt := range []struct {
		name string
		q    TxQuery
	}{
		{"all", TxQuery{AllMerchants: true, Limit: 7}},
		{"two merchants", TxQuery{Merchants: []string{"m2", "m0"}, Limit: 5}},
		{"filtered with a small scan budget", TxQuery{AllMerchants: true, Status: "authorized", Limit: 4, MaxScan: 3}},
		{"merchant filtered with a small scan budget", TxQuery{Merchants: []string{"m0", "m1"}, Status: "authorized", Limit: 2, MaxScan: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			full := tt.q
			full.Limit, full.MaxScan = 1000, 0
			want, err := l.Transactions(context.Background(), full)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Items) == 0 {
				t.Fatal("the full query found nothing")
			}
			var got []*TxState
			q := tt.q
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				page, err := l.Transactions(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Items) > q.Limit {
					t.Fatalf("page of %d items with limit %d", len(page.Items), q.Limit)
				}
				got = append(got, page.Items...)
				if page.Next == nil {
					break
				}
				q.After = page.Next
			}
			if g, w := txIDs(got), txIDs(want.Items); !slices.Equal(g, w) {
				t.Errorf("paged %v\nwant  %v", g, w)
			}
			for i := 1; i < len(got); i++ {
				if !(TxPos{got[i-1].FirstSeen, got[i-1].TransactionID}).less(TxPos{got[i].FirstSeen, got[i].TransactionID}) {
					t.Fatalf("not in first-seen order at %d: %v", i, txIDs(got))
				}
			}
		})
	}
}

func appendConcurrently(t testing.TB, l *Ledger, recs []Record) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, r := range recs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := l.Append(context.Background(), r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// TestDurableState checks that a state whose latest entries are not yet
// durable is refolded from the durable ones.
func TestDurableState(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	seqs := appendAll(t, l,
		queryPayment("p1", "m1", TypeAuthorized, 700, 0),
		queryPayment("p1", "m1", TypeCaptured, 700, time.Minute),
		queryPayment("p1", "m1", TypeRefunded, 300, 2*time.Minute),
	)
	s, err := l.Transaction("p1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		size                    uint64
		wantSeqs                int
		wantStatus              string
		wantCaptured, wantRefnd int64
	}{
		{seqs[2] + 1, 3, "refunded", 700, 300},
		{seqs[2], 2, "captured", 700, 0},
		{seqs[1], 1, "authorized", 0, 0},
		{seqs[0], 0, "", 0, 0},
	}
	for _, tt := range tests {
		got, err := durableState(l.db, s, tt.size)
		if err != nil {
			t.Fatal(err)
		}
		if tt.wantSeqs == 0 {
			if got != nil {
				t.Errorf("size %d: got %+v, want nil", tt.size, got)
			}
			continue
		}
		if len(got.Seqs) != tt.wantSeqs || got.Status != tt.wantStatus || got.Captured != tt.wantCaptured || got.Refunded != tt.wantRefnd {
			t.Errorf("size %d: got %+v", tt.size, got)
		}
	}
	if len(s.Seqs) != 3 {
		t.Errorf("durableState modified its input: %v", s.Seqs)
	}
}

func accessRecord(actor string, at time.Duration) Record {
	return Record{
		Kind: KindAccess, ID: newID(), Time: queryT0.Add(at), Policy: 1,
		Body: AccessBody{ActorID: actor, ActorName: actor, Role: "auditor", Action: "transaction.read", Resource: "transaction/x", Result: "success", Status: 200, OriginIP: "192.0.2.1"},
	}
}

func TestAccessEntries(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	m := time.Minute
	seqs := appendAll(t, l,
		accessRecord("p2", 1*m),
		queryPayment("tx", "m1", TypeCaptured, 1, 0),
		accessRecord("p1", 2*m),
		adminRecord(1),
		accessRecord("p1", 2*m),
		accessRecord("p1", 3*m),
		accessRecord("p2", 5*m),
	)
	all := []uint64{seqs[0], seqs[2], seqs[4], seqs[5], seqs[6]}
	tests := []struct {
		name string
		q    AccessQuery
		want []uint64
	}{
		{"all", AccessQuery{}, all},
		{"actor", AccessQuery{ActorID: "p1"}, []uint64{seqs[2], seqs[4], seqs[5]}},
		{"unknown actor", AccessQuery{ActorID: "p9"}, nil},
		{"from", AccessQuery{From: queryT0.Add(2 * m)}, []uint64{seqs[2], seqs[4], seqs[5], seqs[6]}},
		{"to", AccessQuery{To: queryT0.Add(2 * m)}, []uint64{seqs[0]}},
		{"after a tie", AccessQuery{After: &AccessPos{queryT0.Add(2 * m), seqs[2]}}, []uint64{seqs[4], seqs[5], seqs[6]}},
		{"empty range", AccessQuery{From: queryT0.Add(m), To: queryT0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.q.Limit = 100
			page, err := l.AccessEntries(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, r := range page.Items {
				got = append(got, r.Seq)
				if r.Body.Action != "transaction.read" || r.Time.Before(queryT0) {
					t.Errorf("record %+v", r)
				}
			}
			if !slices.Equal(got, tt.want) || page.Next != nil {
				t.Errorf("got %v next %v, want %v", got, page.Next, tt.want)
			}
		})
	}

	var got []uint64
	q := AccessQuery{Limit: 2, MaxScan: 2, ActorID: "p2"}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, err := l.AccessEntries(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			got = append(got, r.Seq)
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	if want := []uint64{seqs[0], seqs[6]}; !slices.Equal(got, want) {
		t.Errorf("paged %v, want %v", got, want)
	}
}

// TestAccessTimesNeverDecrease checks that an access record stamped before
// the latest access entry (requests stamp their records in parallel and
// reach the appender in any order) is entered at the latest time, also
// after a reopen, so that a reader paging the access log is never passed
// by an entry committed after its page was read.
func TestAccessTimesNeverDecrease(t *testing.T) {
	var keys testKeys
	dir := t.TempDir()
	var logs bytes.Buffer
	l := openTestLogged(t, dir, &keys, slog.New(slog.NewTextHandler(&logs, nil)))
	m := time.Minute
	seqs := appendAll(t, l, accessRecord("p1", 1*m), accessRecord("p1", 5*m))
	page, err := l.AccessEntries(context.Background(), AccessQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 {
		t.Fatalf("first page has %d items, want 2", len(page.Items))
	}
	cursor := &AccessPos{page.Items[1].Time, page.Items[1].Seq}

	// Stamped at 3m, after the page that ends at 5m was read.
	late := appendAll(t, l, accessRecord("p2", 3*m))[0]
	page, err = l.AccessEntries(context.Background(), AccessQuery{Limit: 10, After: cursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Seq != late {
		t.Fatalf("next page %+v, want only the late entry %d", page.Items, late)
	}
	if got, want := page.Items[0].Time, queryT0.Add(5*m); !got.Equal(want) {
		t.Errorf("late entry time %v, want %v (the latest before it)", got, want)
	}
	// Two minutes is no wait for the appender: the operator hears of it.
	if !strings.Contains(logs.String(), "is the clock right?") || !strings.Contains(logs.String(), "moved=2m0s") {
		t.Errorf("no warning of the moved time in the log: %q", logs.String())
	}
	e, err := l.Entry(late)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Time.Equal(queryT0.Add(5 * m)) {
		t.Errorf("stored entry time %v, want the index's %v", e.Time, queryT0.Add(5*m))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openTest(t, dir, &keys)
	defer l.Close()
	seqs = append(seqs, late)
	seqs = append(seqs, appendAll(t, l, accessRecord("p2", 2*m), accessRecord("p2", 6*m))...)
	page, err = l.AccessEntries(context.Background(), AccessQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	var times []time.Duration
	for _, r := range page.Items {
		got = append(got, r.Seq)
		times = append(times, r.Time.Sub(queryT0))
	}
	if !slices.Equal(got, seqs) || !slices.Equal(times, []time.Duration{1 * m, 5 * m, 5 * m, 5 * m, 6 * m}) {
		t.Errorf("after reopen: seqs %v times %v, want seqs %v at 1m 5m 5m 5m 6m", got, times, seqs)
	}
	if _, err := l.Verify(context.Background(), keys.verifiers(t), nil); err != nil {
		t.Errorf("verify: %v", err)
	}
}

func TestQueriesAfterClose(t *testing.T) {
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	appendAll(t, l, queryPayment("tx", "m1", TypeCaptured, 1, 0))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Transactions(context.Background(), TxQuery{AllMerchants: true, Limit: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Transactions after Close: %v", err)
	}
	if _, err := l.AccessEntries(context.Background(), AccessQuery{Limit: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("AccessEntries after Close: %v", err)
	}
	if _, err := l.DurableTransaction("tx"); !errors.Is(err, ErrClosed) {
		t.Errorf("DurableTransaction after Close: %v", err)
	}
}

func TestTimeBounds(t *testing.T) {
	t1 := queryT0
	t2 := queryT0.Add(time.Second)
	tests := []struct {
		name           string
		from, to       time.Time
		wantLo, wantHi bool
		wantOK         bool
	}{
		{"unbounded", time.Time{}, time.Time{}, false, false, true},
		{"from", t1, time.Time{}, true, false, true},
		{"to", time.Time{}, t2, false, true, true},
		{"both", t1, t2, true, true, true},
		{"equal", t1, t1, false, false, false},
		{"reversed", t2, t1, false, false, false},
		{"to before 1970", time.Time{}, time.Unix(-5, 0), false, false, false},
		{"from before 1970", time.Unix(-5, 0), time.Time{}, false, false, true},
	}
	for _, tt := range tests {
		lo, hi, ok := timeBounds(tt.from, tt.to)
		if got := [3]bool{lo != nil, hi != nil, ok}; got != [3]bool{tt.wantLo, tt.wantHi, tt.wantOK} {
			t.Errorf("%s: got lo,hi,ok = %v, want %v", tt.name, got, [3]bool{tt.wantLo, tt.wantHi, tt.wantOK})
		}
	}
}

// BenchmarkTransactions measures one page of 50 over 5,000 transactions at
// 10 merchants: all merchants, a three-merchant scope (merged iterators),
// and a status filter that matches one transaction in four.
func BenchmarkTransactions(b *testing.B) {
	var keys testKeys
	l := openTest(b, b.TempDir(), &keys)
	defer l.Close()
	var recs []Record
	for i := range 5000 {
		typ := TypeCaptured
		if i%4 == 0 {
			typ = TypeRefunded
		}
		recs = append(recs, queryPayment(fmt.Sprintf("tx%05d", i), fmt.Sprintf("m%d", i%10), typ, 100, time.Duration(i)*time.Second))
	}
	appendConcurrently(b, l, recs)
	for _, bc := range []struct {
		name string
		q    TxQuery
	}{
		{"all", TxQuery{AllMerchants: true, Limit: 50}},
		{"merchants=3", TxQuery{Merchants: []string{"m1", "m4", "m7"}, Limit: 50}},
		{"status", TxQuery{AllMerchants: true, Status: "refunded", Limit: 50}},
		{"mid-range", TxQuery{AllMerchants: true, Limit: 50, After: &TxPos{queryT0.Add(2500 * time.Second), "tx02500"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				page, err := l.Transactions(context.Background(), bc.q)
				if err != nil || len(page.Items) != 50 || !strings.HasPrefix(page.Items[0].TransactionID, "tx") {
					b.Fatal(err, len(page.Items))
				}
			}
		})
	}
}

// TestPlantedAccessRowRefused checks that the latest access time is taken
// from the entry the newest access index row names, not from the row: a
// planted row dated in the future must not set the time of every later
// access entry, so a writable open refuses the store.
func TestPlantedAccessRowRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		seq  uint64 // the entry the planted row names
	}{
		{"names an access entry of another time", 0},
		{"names an entry that is not an access entry", 1},
		{"names an entry past the end", 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys testKeys
			dir := t.TempDir()
			l := openTest(t, dir, &keys)
			appendAll(t, l, accessRecord("p1", time.Minute), adminRecord(1))
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := pebble.Open(dir, &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			future := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := db.Set(key(tagIndex, idxAccess, future, tc.seq), nil, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = Open(ctx, Options{Dir: dir})
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Open with a planted access row: %v, want ErrTampered", err)
			}
		})
	}
}
