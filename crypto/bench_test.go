package crypto

import (
	"context"
	"strings"
	"testing"
)

// benchEvent is the personal data of a ~1 KB event, as five fields.
var benchEvent = []struct {
	field string
	value []byte
}{
	{"cardholder_name", []byte(testName)},
	{"email", []byte(testEmail)},
	{"billing_address", []byte("42 Wallaby Way, Sydney NSW 2000, Australia")},
	{"ip", []byte("203.0.113.195")},
	{"raw", []byte(`{"id":"evt_1","type":"payment.captured","metadata":{"order":"` + strings.Repeat("x", 820) + `"}}`)},
}

func sealEvent(b *testing.B, dk *DataKey, entry string) {
	for _, f := range benchEvent {
		if _, err := dk.Seal(AD{Ledger: testLedgerID, Entry: entry, Field: f.field}, f.value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokenize(b *testing.B) {
	k, _, _ := newTestKeysets(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Tokenize(testPAN); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	k, _, _ := newTestKeysets(b)
	b.ReportAllocs()
	for b.Loop() {
		k.BlindIndex("email", testEmail)
	}
}

func BenchmarkSealEvent(b *testing.B) {
	d, store, _, _, _ := newTestDataKeys(b, 0)
	dk := newStoredKey(b, d, store)
	n := 0
	for _, f := range benchEvent {
		n += len(f.value)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		sealEvent(b, dk, "evt_1")
	}
}

// BenchmarkDataKeyNew makes a data key and its wrapped bytes: v1 is the
// reference of the old format (newDataKeyV1), v2 is DataKeys.New. The
// wrapped-B metric is the size of the wrapped bytes, stored once per event.
func BenchmarkDataKeyNew(b *testing.B) {
	d, _, _, _, _ := newTestDataKeys(b, 0)
	for _, v := range []struct {
		name string
		new  func() (*DataKey, []byte, error)
	}{
		{"v1", func() (*DataKey, []byte, error) { return newDataKeyV1(d) }},
		{"v2", d.New},
	} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				_, w, err := v.new()
				if err != nil {
					b.Fatal(err)
				}
				size = len(w)
			}
			b.ReportMetric(float64(size), "wrapped-B")
		})
	}
}

// BenchmarkDataKeyUnwrap turns wrapped bytes of each format into a data key
// ready to use, as a cache miss of Get does after reading the store (every
// cluster node does it for every event another node ingested).
func BenchmarkDataKeyUnwrap(b *testing.B) {
	d, _, _, _, _ := newTestDataKeys(b, 0)
	for _, v := range []struct {
		name string
		new  func() (*DataKey, []byte, error)
	}{
		{"v1", func() (*DataKey, []byte, error) { return newDataKeyV1(d) }},
		{"v2", d.New},
	} {
		dk, w, err := v.new()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.unwrap(dk.ID(), w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(w)), "wrapped-B")
		})
	}
}

func BenchmarkDataKeyGetHit(b *testing.B) {
	ctx := context.Background()
	d, store, _, _, _ := newTestDataKeys(b, 0)
	id := newStoredKey(b, d, store).ID()
	if _, err := d.Get(ctx, id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDataKeyGetMiss(b *testing.B) {
	ctx := context.Background()
	d, store, _, _, _ := newTestDataKeys(b, 0)
	id := newStoredKey(b, d, store).ID()
	b.ReportAllocs()
	for b.Loop() {
		d.Forget(id)
		if _, err := d.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenizeAndSealEvent is the crypto work of ingesting one event
// for a known cardholder: tokenize the PAN, fetch the subject's data key
// (cache hit) and seal five fields. Goal: under 20 µs.
func BenchmarkTokenizeAndSealEvent(b *testing.B) {
	ctx := context.Background()
	d, store, k, _, _ := newTestDataKeys(b, 0)
	id := newStoredKey(b, d, store).ID()
	if _, err := d.Get(ctx, id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Tokenize(testPAN); err != nil {
			b.Fatal(err)
		}
		dk, err := d.Get(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		sealEvent(b, dk, "evt_1")
	}
}
