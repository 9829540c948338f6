package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// erasePayment is a payment record as ingest makes it: sealed under
// dataKey, with subject rows for each subject.
func erasePayment(tx, dataKey string, subjects ...string) Record {
	at := time.Date(2026, 11, 20, 14, 3, 11, 0, time.UTC)
	r := paymentRecord(tx, TypeCaptured, 4550, at)
	p := r.Body.(PaymentBody)
	p.DataKey = dataKey
	p.Sealed = map[string][]byte{"card_token": []byte("ciphertext")}
	r.Body = p
	for _, s := range subjects {
		r.Subjects = append(r.Subjects, SubjectRef{Subject: s, DataKey: dataKey, TransactionID: tx})
	}
	return r
}

// eraseSSTContains reports which of values occur in the bytes of the
// ledger's live SSTables (those of its current version) and, separately,
// of any file in its directory.
func eraseSSTContains(t *testing.T, l *Ledger, values ...string) (live, anywhere []string) {
	t.Helper()
	levels, err := l.db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	isLive := map[string]bool{}
	for _, tables := range levels {
		for _, ti := range tables {
			isLive[fmt.Sprintf("%06d.sst", ti.FileNum)] = true
		}
	}
	if len(isLive) == 0 {
		t.Fatal("no SSTables to scan")
	}
	files, err := os.ReadDir(l.opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(l.opts.Dir, f.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // an obsolete file, deleted since ReadDir
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if !eraseContainsFragment(b, v) {
				continue
			}
			if isLive[f.Name()] && !slices.Contains(live, v) {
				live = append(live, v)
			}
			if !slices.Contains(anywhere, v) {
				anywhere = append(anywhere, v)
			}
		}
	}
	slices.Sort(live)
	slices.Sort(anywhere)
	return live, anywhere
}

// eraseContainsFragment reports whether b holds any 12-byte piece of v.
// SSTable blocks are compressed: a random value's bytes survive, but may be
// split where the compressor found a repeat.
func eraseContainsFragment(b []byte, v string) bool {
	const n = 12
	for i := 0; i+n <= len(v); i++ {
		if bytes.Contains(b, []byte(v[i:i+n])) {
			return true
		}
	}
	return false
}

func eraseSorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestEraseSubjects erases a subject whose rows are still in the memtable,
// already in an L0 SSTable, or already compacted to the bottom level: in
// each case no live SSTable holds the erased token afterwards, in a row or
// a tombstone.
func TestEraseSubjects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(l *Ledger) error
	}{
		{"rows in memtable", func(*Ledger) error { return nil }},
		{"rows flushed", func(l *Ledger) error { return l.db.Flush() }},
		{"rows at the bottom", func(l *Ledger) error {
			return l.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testEraseSubjects(t, tc.before) })
	}
}

func testEraseSubjects(t *testing.T, before func(*Ledger) error) {
	ctx := context.Background()
	dir := t.TempDir()
	var keys testKeys
	l := openTest(t, dir, &keys)

	// Card A and card C were both used with email E. Card A's events are
	// under dk_a, card C's under dk_c (E therefore has two keys).
	// Random tails, like real tokens: SSTable blocks are compressed, so
	// only incompressible values can be found by a raw scan.
	tailA, tailC, tailE := newID(), newID(), newID()
	var (
		cardA  = "card:tok_00000001_" + tailA
		cardC  = "card:tok_00000001_" + tailC
		emailE = "email:bi_00000001_" + tailE
	)
	const (
		dkA = "dk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		dkC = "dk_cccccccccccccccccccccccccccccccc"
	)
	recs := []Record{
		erasePayment("pay_a1", dkA, cardA, emailE),
		erasePayment("pay_a2", dkA, cardA, emailE),
		erasePayment("pay_c1", dkC, cardC, emailE),
	}
	restrict := adminRecord(1)
	restrict.State = []StateRow{
		{Table: TableRestricted, Key: dkA, Value: []byte("ref-1")},
		{Table: TableRestricted, Key: dkC, Value: []byte("ref-1")},
		{Table: TableCorrections, Key: dkA, AppendSeq: true},
	}
	recs = append(recs, restrict)
	for _, r := range recs {
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := before(l); err != nil {
		t.Fatal(err)
	}

	if err := l.EraseSubjects(ctx, []string{cardA, emailE}, []string{dkA}); err != nil {
		t.Fatal(err)
	}

	check := func(l *Ledger) {
		t.Helper()
		for _, tc := range []struct {
			subject       string
			wantKeys, txs []string
		}{
			{cardA, nil, nil},
			{emailE, []string{dkC}, []string{"pay_c1"}},
			{cardC, []string{dkC}, []string{"pay_c1"}},
		} {
			gotKeys, err := l.SubjectKeys(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			gotTxs, err := l.SubjectTransactions(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(gotKeys, tc.wantKeys) || !slices.Equal(gotTxs, tc.txs) {
				t.Errorf("%s: keys %v txs %v, want %v %v", tc.subject[:10], gotKeys, gotTxs, tc.wantKeys, tc.txs)
			}
		}
		if r, err := l.Restricted(dkA); err != nil || r {
			t.Errorf("Restricted(dkA) = %v, %v after erasure", r, err)
		}
		if c, err := l.Corrections(dkA); err != nil || len(c) != 0 {
			t.Errorf("Corrections(dkA) = %v, %v after erasure", c, err)
		}
		if r, err := l.Restricted(dkC); err != nil || !r {
			t.Errorf("Restricted(dkC) = %v, %v: a live key lost its restriction", r, err)
		}
		// The financial facts and the tree are untouched.
		if st, err := l.Transaction("pay_a1"); err != nil || st.Captured != 4550 {
			t.Errorf("Transaction(pay_a1) = %+v, %v", st, err)
		}
		if _, err := l.Verify(ctx, keys.verifiers(t), nil); err != nil {
			t.Errorf("Verify after erasure: %v", err)
		}
	}
	check(l)

	// The erased token is in no live SSTable, neither as a row nor as a
	// tombstone; the kept subjects are (which shows the scan sees them).
	live, anywhere := eraseSSTContains(t, l, tailA, tailC, tailE)
	if want := eraseSorted(tailC, tailE); !slices.Equal(live, want) {
		t.Errorf("subjects in live SSTables: %v, want %v", live, want)
	}
	if slices.Contains(anywhere, tailA) {
		t.Logf("the erased token remains outside live SSTables (an old WAL until it is recycled)")
	}

	// A second call finds nothing to do.
	if err := l.EraseSubjects(ctx, []string{cardA, emailE}, []string{dkA}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, &keys)
	defer l.Close()
	check(l)
	// Live SSTables are the guarantee; a recycled WAL file may still hold
	// the old bytes until it is overwritten (SECURITY.md says so), and
	// whether one does depends on timing, so it is only logged.
	live, anywhere = eraseSSTContains(t, l, tailA)
	if len(live) != 0 {
		t.Errorf("erased token in a live SSTable after a restart")
	}
	if len(anywhere) != 0 {
		t.Logf("after a restart the erased token remains in a file that is not a live SSTable (recycled WAL)")
	}
}

func TestEraseSubjectsUnknownAndInvalid(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	if _, err := l.Append(ctx, erasePayment("pay_1", "dk_1", "card:x")); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	for _, tc := range []struct {
		name     string
		subjects []string
		keys     []string
		wantErr  bool
	}{
		{"unknown subject", []string{"card:nobody"}, []string{"dk_2"}, false},
		{"subject not under the key", []string{"card:x"}, []string{"dk_2"}, false},
		{"nothing", nil, nil, false},
		{"empty subject", []string{""}, []string{"dk_1"}, true},
		{"nul in subject", []string{"card:\x00"}, []string{"dk_1"}, true},
		{"empty key", []string{"card:x"}, []string{""}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.EraseSubjects(ctx, tc.subjects, tc.keys)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("EraseSubjects: %v, want error %v", err, tc.wantErr)
			}
			if k, _ := l.SubjectKeys("card:x"); !slices.Equal(k, []string{"dk_1"}) {
				t.Fatalf("card:x keys = %v", k)
			}
		})
	}
	if l.Size() != size {
		t.Fatal("EraseSubjects appended entries")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.EraseSubjects(ctx, []string{"card:x"}, []string{"dk_1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("EraseSubjects after Close: %v, want ErrClosed", err)
	}
}

func TestEntryByUnique(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	r := adminRecord(1)
	r.Unique = &Unique{Key: "subject-request/ref-1", Digest: []byte("d1")}
	res, err := l.Append(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key     string
		wantSeq uint64
		wantErr error
	}{
		{"subject-request/ref-1", res.Seq, nil},
		{"subject-request/ref-2", 0, ErrNotFound},
		{"subject-request/ref", 0, ErrNotFound},
		{"", 0, ErrNotFound},
		{"a\x00b", 0, ErrNotFound},
	} {
		t.Run(fmt.Sprintf("%q", tc.key), func(t *testing.T) {
			e, err := l.EntryByUnique(tc.key)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (e.Seq != tc.wantSeq || string(e.Unique.Digest) != "d1") {
				t.Fatalf("got entry %d %+v, want %d", e.Seq, e.Unique, tc.wantSeq)
			}
		})
	}
}

// BenchmarkEraseSubjects measures one erasure (two subjects, one key, ten
// transactions) in a ledger of about 2,000 payment entries, including the
// synced batch and the compaction of the subjects' key ranges.
func BenchmarkEraseSubjects(b *testing.B) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(b, b.TempDir(), &keys)
	defer l.Close()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() { // concurrent, so the setup group-commits
			for j := range 10 {
				dk := fmt.Sprintf("dk_%032d", i)
				r := erasePayment(fmt.Sprintf("pay_%d_%d", i, j), dk, fmt.Sprintf("card:tok_%d", i), fmt.Sprintf("email:bi_%d", i))
				if _, err := l.Append(ctx, r); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n := 200 + i
		dk := fmt.Sprintf("dk_%032d", n)
		subjects := []string{fmt.Sprintf("card:tok_%d", n), fmt.Sprintf("email:bi_%d", n)}
		for j := range 10 {
			if _, err := l.Append(ctx, erasePayment(fmt.Sprintf("pay_%d_%d", n, j), dk, subjects...)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := l.EraseSubjects(ctx, subjects, []string{dk}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEraseRefusesErasedKeys checks that once EraseSubjects was called for
// a data key, a record sealed under it (by an ingest that held the key
// before it was destroyed) is refused, and leaves no subject row behind,
// while the subject can go on under a new key.
func TestEraseRefusesErasedKeys(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	const dkOld, dkNew = "dk_old", "dk_new"
	if _, err := l.Append(ctx, erasePayment("pay_1", dkOld, "card:x", "email:e")); err != nil {
		t.Fatal(err)
	}
	if err := l.EraseSubjects(ctx, []string{"card:x", "email:e"}, []string{dkOld}); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	if _, err := l.Append(ctx, erasePayment("pay_2", dkOld, "card:x")); !errors.Is(err, ErrDataKeyErased) {
		t.Fatalf("append under an erased key: %v, want ErrDataKeyErased", err)
	}
	if l.Size() != size {
		t.Fatal("the refused record was appended")
	}
	if k, _ := l.SubjectKeys("card:x"); len(k) != 0 {
		t.Fatalf("card:x keys after the refused append = %v", k)
	}
	// Records without subject rows, and the subject under a new key, go on.
	if _, err := l.Append(ctx, adminRecord(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, erasePayment("pay_2", dkNew, "card:x")); err != nil {
		t.Fatal(err)
	}
	if k, _ := l.SubjectKeys("card:x"); !slices.Equal(k, []string{dkNew}) {
		t.Fatalf("card:x keys = %v, want [%s]", k, dkNew)
	}
}

// TestEraseRacingAppends erases a subject while appends under its key keep
// arriving: whichever way each append goes (committed before the erasure
// read the rows, or refused), no row naming the key survives, and every
// append after the erasure returned is refused.
func TestEraseRacingAppends(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	for round := range 10 {
		dk := fmt.Sprintf("dk_round%02d", round)
		subj := fmt.Sprintf("card:round%02d", round)
		if _, err := l.Append(ctx, erasePayment(fmt.Sprintf("pay_%d_first", round), dk, subj)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		erased := make(chan struct{})
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-erased:
						return
					default:
					}
					_, err := l.Append(ctx, erasePayment(fmt.Sprintf("pay_%d_%d_%d", round, i, n), dk, subj))
					if err != nil && !errors.Is(err, ErrDataKeyErased) {
						t.Error(err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		err := l.EraseSubjects(ctx, []string{subj}, []string{dk})
		close(erased)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, erasePayment(fmt.Sprintf("pay_%d_last", round), dk, subj)); !errors.Is(err, ErrDataKeyErased) {
			t.Fatalf("round %d: append after the erasure: %v, want ErrDataKeyErased", round, err)
		}
		if k, err := l.SubjectKeys(subj); err != nil || len(k) != 0 {
			t.Fatalf("round %d: %s keys after erasure = %v, %v", round, subj, k, err)
		}
		if tx, err := l.SubjectTransactions(subj); err != nil || len(tx) != 0 {
			t.Fatalf("round %d: %s has %d transactions after erasure, %v", round, subj, len(tx), err)
		}
	}
}

// TestEraseWaitsForTheBatchBeingApplied holds the appender in the middle
// of a batch that read the erased keys before EraseSubjects marked its key:
// EraseSubjects must wait for that batch and delete its rows, rather than
// read the rows first and leave the batch's behind.
func TestEraseWaitsForTheBatchBeingApplied(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	const dk, subj = "dk_held", "card:held"
	if _, err := l.Append(ctx, erasePayment("pay_held_0", dk, subj)); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	l.applyHook = func() {
		once.Do(func() {
			close(held)
			<-release
		})
	}
	// Before the deferred Close, which waits for the appender.
	defer releaseOnce.Do(func() { close(release) })
	appended := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, erasePayment("pay_held_1", dk, subj))
		appended <- err
	}()
	<-held // the batch has read the erased keys: none yet
	erased := make(chan error, 1)
	go func() { erased <- l.EraseSubjects(ctx, []string{subj}, []string{dk}) }()
	for !l.erasedKeys()[dk] {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-erased:
		t.Fatalf("EraseSubjects returned (%v) while a batch under its key was being applied", err)
	case <-time.After(50 * time.Millisecond):
	}
	releaseOnce.Do(func() { close(release) })
	if err := <-appended; err != nil {
		t.Fatalf("the held append: %v (it read the keys before the mark)", err)
	}
	if err := <-erased; err != nil {
		t.Fatal(err)
	}
	if k, _ := l.SubjectKeys(subj); len(k) != 0 {
		t.Fatalf("%s keys after erasure = %v", subj, k)
	}
	if tx, _ := l.SubjectTransactions(subj); len(tx) != 0 {
		t.Fatalf("%s transactions after erasure = %v", subj, tx)
	}
}
