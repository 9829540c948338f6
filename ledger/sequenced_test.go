package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// openNode opens a ledger as a cluster node would: sequenced, with a fixed
// id, the given signer key and agreement function.
func openNode(t *testing.T, dir, id string, keys testKeys, agree func(context.Context, uint64, []byte) error) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), Options{
		Dir: dir, ID: id, Sequenced: true, Agree: agree,
		Signer: func(string) (note.Signer, error) { return note.NewSigner(keys.skey) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func submitAll(t *testing.T, l *Ledger, recs []Record, from uint64) []Result {
	t.Helper()
	var ps []*Pending
	for i, r := range recs {
		p, err := l.Submit(r, from+uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	out := make([]Result, len(ps))
	for i, p := range ps {
		<-p.Done()
		res, err := p.Result()
		if err != nil && !errors.Is(err, ErrConflict) {
			t.Fatalf("record %d: %v", i, err)
		}
		out[i] = res
	}
	return out
}

// logOf is an ordered log with cut points, the same records for every node.
func logOf(n int) []Record {
	var recs []Record
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		rec := paymentRecord(fmt.Sprintf("tx%d", i%7), TypeCaptured, int64(i), at.Add(time.Duration(i)*time.Second))
		rec.Unique = &Unique{Key: fmt.Sprintf("dev/evt%d", i%40), Digest: []byte{byte(i % 40)}}
		recs = append(recs, rec, adminRecord(i))
		if i%9 == 0 {
			recs = append(recs, Record{Cut: true})
		}
	}
	return append(recs, Record{Cut: true})
}

func TestSequencedNodesSignIdenticalCheckpoints(t *testing.T) {
	keys := newTestKeys(t, "paytrail/c0ffee")
	recs := logOf(60)
	a := openNode(t, t.TempDir(), "c0ffee", keys, nil)
	b := openNode(t, t.TempDir(), "c0ffee", keys, nil)
	ra := submitAll(t, a, recs, 1)
	// Node b gets the log in two runs, as after a restart.
	rb := submitAll(t, b, recs[:50], 1)
	rb = append(rb, submitAll(t, b, recs[50:], 51)...)
	for i := range ra {
		if ra[i].Seq != rb[i].Seq || ra[i].Duplicate != rb[i].Duplicate {
			t.Fatalf("record %d: %+v on a, %+v on b", i, ra[i], rb[i])
		}
	}
	if a.Applied() != uint64(len(recs)) || b.Applied() != uint64(len(recs)) {
		t.Fatalf("applied %d and %d, want %d", a.Applied(), b.Applied(), len(recs))
	}
	if a.Size() != b.Size() || a.Size() == 0 {
		t.Fatalf("sizes %d and %d", a.Size(), b.Size())
	}
	cuts := 0
	for i, r := range recs {
		if !r.Cut {
			continue
		}
		cuts++
		size := ra[i].Seq
		ca, err := a.Checkpoint(size)
		if err != nil {
			t.Fatalf("a has no checkpoint at cut size %d: %v", size, err)
		}
		cb, err := b.Checkpoint(size)
		if err != nil || !bytes.Equal(ca, cb) {
			t.Fatalf("checkpoints at %d differ: %v\n%s\n%s", size, err, ca, cb)
		}
	}
	if cuts < 5 {
		t.Fatalf("only %d cuts", cuts)
	}
	// Only cut sizes are signed: no timer checkpoint in between.
	if _, err := a.Checkpoint(3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("checkpoint at 3 (no cut there): %v", err)
	}
	for seq := range a.Size() {
		ea, _ := a.Entry(seq)
		eb, _ := b.Entry(seq)
		if !bytes.Equal(ea.Bytes(), eb.Bytes()) {
			t.Fatalf("entry %d differs", seq)
		}
	}
	// A reopened node knows where it stopped.
	dir := t.TempDir()
	c := openNode(t, dir, "c0ffee", keys, nil)
	submitAll(t, c, recs[:10], 1)
	c.Close()
	c = openNode(t, dir, "c0ffee", keys, nil)
	if c.Applied() != 10 {
		t.Fatalf("reopened node applied %d, want 10", c.Applied())
	}
	// A node with another ledger's store refuses.
	c.Close()
	if _, err := Open(context.Background(), Options{Dir: dir, ID: "other"}); !errors.Is(err, ErrWrongLedger) {
		t.Fatalf("open with another id: %v", err)
	}
}

func TestSequencedNodeHaltsOnFork(t *testing.T) {
	keys := newTestKeys(t, "paytrail/c0ffee")
	agreed := map[uint64][]byte{}
	agree := func(_ context.Context, size uint64, root []byte) error {
		if r, ok := agreed[size]; ok && !bytes.Equal(r, root) {
			return fmt.Errorf("%w at %d", ErrForked, size)
		}
		agreed[size] = root
		return nil
	}
	a := openNode(t, t.TempDir(), "c0ffee", keys, agree)
	submitAll(t, a, []Record{adminRecord(1), adminRecord(2), {Cut: true}}, 1)
	// b applies a different second record: its root at 2 disagrees.
	b := openNode(t, t.TempDir(), "c0ffee", keys, agree)
	p1, _ := b.Submit(adminRecord(1), 1)
	p2, _ := b.Submit(adminRecord(3), 2)
	p3, _ := b.Submit(Record{Cut: true}, 3)
	<-p1.Done()
	<-p2.Done()
	<-p3.Done()
	if _, err := p3.Result(); !errors.Is(err, ErrForked) {
		t.Fatalf("cut on the forked node: %v", err)
	}
	if _, err := b.Checkpoint(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("forked node stored the checkpoint: %v", err)
	}
	if err := b.Healthy(); !errors.Is(err, ErrForked) {
		t.Fatalf("forked node healthy: %v", err)
	}
	p4, err := b.Submit(adminRecord(4), 4)
	if err == nil {
		<-p4.Done()
		_, err = p4.Result()
	}
	if err == nil {
		t.Fatal("forked node applied another record")
	}
}

func TestSeedReproducesEntriesAndCheckpoints(t *testing.T) {
	var keys testKeys
	src := openTest(t, t.TempDir(), &keys)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		if _, err := src.Append(context.Background(), paymentRecord(fmt.Sprintf("tx%d", i%4), TypeCaptured, 10, at)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := src.checkpointNow(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var recs []Record
	for seq := range src.Size() {
		e, err := src.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, Record{Entry: e.Bytes()})
		if cp, err := src.Checkpoint(seq + 1); err == nil {
			recs = append(recs, Record{Checkpoint: cp})
		}
	}
	dst := openNode(t, t.TempDir(), src.ID(), keys, nil)
	res := submitAll(t, dst, recs, 1)
	for i, r := range recs {
		if r.Checkpoint != nil {
			got, err := dst.Checkpoint(res[i].Seq)
			if err != nil || !bytes.Equal(got, r.Checkpoint) {
				t.Fatalf("seeded checkpoint at %d: %v", res[i].Seq, err)
			}
		}
	}
	rs, _ := src.Root(src.Size())
	rd, _ := dst.Root(dst.Size())
	if dst.Size() != src.Size() || !bytes.Equal(rs, rd) {
		t.Fatalf("seeded size %d root %x, source %d %x", dst.Size(), rd, src.Size(), rs)
	}
	if ts, _ := dst.Transaction("tx1"); ts == nil || len(ts.Seqs) == 0 {
		t.Fatal("seeded node has no transaction state")
	}
	// A seeded entry out of place is refused.
	e, _ := src.Entry(3)
	p, err := dst.Submit(Record{Entry: e.Bytes()}, uint64(len(recs)+1))
	if err == nil {
		<-p.Done()
		_, err = p.Result()
	}
	if !errors.Is(err, ErrSeedOrder) {
		t.Fatalf("out-of-place seeded entry: %v", err)
	}
	if _, err := dst.Submit(Record{Checkpoint: []byte("garbage")}, uint64(len(recs)+2)); err != nil {
		t.Fatal(err)
	}
}
