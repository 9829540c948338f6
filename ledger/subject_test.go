package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func linkedPayment(tx, dk string, subjects ...string) Record {
	r := paymentRecord(tx, TypeCaptured, 100, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	r.Link = &SubjectLink{TransactionID: tx, DataKey: dk, Subjects: subjects}
	return r
}

func eraseRecord(txs ...string) Record {
	r := adminRecord(0)
	r.Kind = KindSubjectRequest
	r.Erase = &Erasure{Transactions: txs}
	return r
}

// An erasure acts at its place in the order of appends, also inside one
// batch: it takes the keys and rows of the events before it, including
// those of its own batch, and none of the events after it.
func TestEraseInOrderWithAppends(t *testing.T) {
	ctx := context.Background()
	var keys testKeys
	l := openTest(t, t.TempDir(), &keys)
	defer l.Close()
	const subj = "card:tok"
	if _, err := l.Append(ctx, linkedPayment("pay_1", "dk_0", subj)); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.applyHook = func() { once.Do(func() { close(held); <-release }) }
	var wg sync.WaitGroup
	// The first append is held in the appender; the others queue behind it
	// and are applied together, in some order.
	type result struct {
		dk  string
		res Result
		err error
	}
	results := make(chan result, 8)
	appendOne := func(dk string, r Record) {
		defer wg.Done()
		res, err := l.Append(ctx, r)
		results <- result{dk, res, err}
	}
	wg.Add(1)
	go appendOne("dk_1", linkedPayment("pay_1", "dk_1", subj, "email:x"))
	<-held
	for i := 2; i <= 5; i++ {
		wg.Add(1)
		go appendOne(fmt.Sprintf("dk_%d", i), linkedPayment("pay_1", fmt.Sprintf("dk_%d", i), subj))
	}
	wg.Add(1)
	go appendOne("", eraseRecord("pay_1"))
	for i := 6; i <= 7; i++ {
		wg.Add(1)
		go appendOne(fmt.Sprintf("dk_%d", i), linkedPayment("pay_1", fmt.Sprintf("dk_%d", i), subj))
	}
	time.Sleep(10 * time.Millisecond) // let them queue; any order is checked below
	close(release)
	wg.Wait()
	close(results)
	var erase Result
	seqOf := map[string]uint64{"dk_0": 0}
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.dk == "" {
			erase = r.res
		} else {
			seqOf[r.dk] = r.res.Seq
		}
	}
	if erase.Shred == nil {
		t.Fatal("the erasure returned nothing to shred")
	}
	var before, after []string
	for dk, seq := range seqOf {
		if seq < erase.Seq {
			before = append(before, dk)
		} else {
			after = append(after, dk)
		}
	}
	slices.Sort(before)
	slices.Sort(after)
	if !slices.Equal(erase.Shred.DataKeys, before) {
		t.Fatalf("shredded %v, want the keys of the events before the erasure %v", erase.Shred.DataKeys, before)
	}
	if got, _ := l.TransactionDataKeys("pay_1"); !slices.Equal(got, after) {
		t.Fatalf("keys left %v, want those of the events after the erasure %v", got, after)
	}
	txs, _ := l.SubjectTransactions(subj)
	if want := len(after) > 0; (len(txs) == 1) != want {
		t.Fatalf("card rows %v after the erasure, with events after it: %v", txs, after)
	}
	pending, err := l.PendingShreds()
	if err != nil || len(pending) != 1 || pending[0].ID == "" {
		t.Fatalf("pending %v %v", pending, err)
	}
	if err := l.FinishShred(ctx, pending[0]); err != nil {
		t.Fatal(err)
	}
	if pending, _ := l.PendingShreds(); len(pending) != 0 {
		t.Fatalf("pending after FinishShred: %v", pending)
	}
}

func TestOpenRefusesLayout1(t *testing.T) {
	dir, _ := buildVerifiable(t, 4)
	editStore(t, dir, func(db *pebble.DB) {
		if err := db.Set(key(tagSubject, subjLegacyK, "card:tok", "dk_1"), nil, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
	_, err := Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrOldLayout) {
		t.Fatalf("Open = %v, want ErrOldLayout", err)
	}
}
