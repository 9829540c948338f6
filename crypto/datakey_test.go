package crypto

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newTestDataKeys(t testing.TB, cacheSize int) (*DataKeys, *memKeyStore, *Keysets, string, *Master) {
	t.Helper()
	k, dir, m := newTestKeysets(t)
	store := newMemKeyStore()
	return NewDataKeys(k, store, cacheSize), store, k, dir, m
}

// newStoredKey makes a data key and stores its wrapped bytes.
func newStoredKey(t testing.TB, d *DataKeys, store *memKeyStore) *DataKey {
	t.Helper()
	dk, wrapped, err := d.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	store.put(dk.ID(), wrapped)
	return dk
}

func TestSealOpen(t *testing.T) {
	d, store, _, _, _ := newTestDataKeys(t, 0)
	dk := newStoredKey(t, d, store)
	if !validDataKeyID(dk.ID()) {
		t.Errorf("id %q is not dk_ + 32 hex", dk.ID())
	}
	ad := AD{Ledger: testLedgerID, Entry: "evt_A", Field: "cardholder_name"}
	pt := []byte(testName)

	ct, err := dk.Seal(ad, pt)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != len(pt)+28 {
		t.Errorf("len(ciphertext) = %d, want %d", len(ct), len(pt)+28)
	}
	if bytes.Contains(ct, pt) {
		t.Errorf("ciphertext contains the plaintext")
	}
	ct2, _ := dk.Seal(ad, pt)
	if bytes.Equal(ct, ct2) {
		t.Errorf("two seals of the same plaintext are equal (nonce reuse)")
	}
	got, err := dk.Open(ad, ct)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v, want %q", got, err, pt)
	}
	// Empty plaintext round-trips too.
	ce, _ := dk.Seal(ad, nil)
	if got, err := dk.Open(ad, ce); err != nil || len(got) != 0 {
		t.Errorf("Open(empty) = %q, %v", got, err)
	}

	// The same key fetched through Get opens it too.
	d.Forget(dk.ID())
	dk2, err := d.Get(context.Background(), dk.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dk2.Open(ad, ct); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Open with unwrapped key = %q, %v", got, err)
	}
}

func TestOpenRejectsSwaps(t *testing.T) {
	d, store, _, _, _ := newTestDataKeys(t, 0)
	dk := newStoredKey(t, d, store)
	other := newStoredKey(t, d, store)
	ad := AD{Ledger: testLedgerID, Entry: "evt_A", Field: "cardholder_name"}
	ct, err := dk.Seal(ad, []byte(testName))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x80
		return c
	}
	for _, tc := range []struct {
		name string
		key  *DataKey
		ad   AD
		ct   []byte
	}{
		{"other entry", dk, AD{Ledger: testLedgerID, Entry: "evt_B", Field: "cardholder_name"}, ct},
		{"other field", dk, AD{Ledger: testLedgerID, Entry: "evt_A", Field: "email"}, ct},
		{"other ledger", dk, AD{Ledger: "ldg_other", Entry: "evt_A", Field: "cardholder_name"}, ct},
		{"shifted boundary", dk, AD{Ledger: testLedgerID, Entry: "evt_Acardholder", Field: "_name"}, ct},
		{"other subject's key", other, ad, ct},
		{"nonce altered", dk, ad, flip(0)},
		{"body altered", dk, ad, flip(14)},
		{"tag altered", dk, ad, flip(len(ct) - 1)},
		{"truncated", dk, ad, ct[:len(ct)-1]},
		{"too short", dk, ad, ct[:10]},
		{"empty", dk, ad, nil},
		{"empty ad", dk, AD{}, ct},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.key.Open(tc.ad, tc.ct)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Open = %q, %v, want ErrDecrypt", got, err)
			}
			if got != nil {
				t.Errorf("Open returned plaintext with an error")
			}
			msg := err.Error()
			if strings.Contains(msg, testName) || strings.Contains(msg, base64.StdEncoding.EncodeToString(ct)) || strings.Contains(msg, string(ct)) {
				t.Errorf("error message leaks plaintext or ciphertext: %q", msg)
			}
		})
	}
	if _, err := dk.Seal(AD{Ledger: testLedgerID, Entry: "e"}, []byte("x")); err == nil {
		t.Errorf("Seal with no field name succeeded")
	}
}

func TestDataKeysGet(t *testing.T) {
	ctx := context.Background()
	d, store, _, _, _ := newTestDataKeys(t, 0)
	dk := newStoredKey(t, d, store)

	if _, err := d.Get(ctx, dk.ID()); err != nil {
		t.Fatal(err)
	}
	reads := store.readCount()
	if _, err := d.Get(ctx, dk.ID()); err != nil {
		t.Fatal(err)
	}
	if store.readCount() != reads {
		t.Errorf("second Get read the store; want a cache hit")
	}

	// Never stored.
	fresh, _, err := d.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, fresh.ID()); !errors.Is(err, ErrDataKeyDestroyed) {
		t.Errorf("Get of unstored key = %v, want ErrDataKeyDestroyed", err)
	}

	// Destroyed: gone from the store, then forgotten.
	store.destroy(dk.ID())
	d.Forget(dk.ID())
	if _, err := d.Get(ctx, dk.ID()); !errors.Is(err, ErrDataKeyDestroyed) {
		t.Errorf("Get after destroy = %v, want ErrDataKeyDestroyed", err)
	}

	// Wrapped bytes stored under another id do not unwrap.
	a, wrappedA, _ := d.New()
	b, _, _ := d.New()
	store.put(b.ID(), wrappedA)
	if _, err := d.Get(ctx, b.ID()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Get of key wrapped for %s stored under %s = %v, want ErrDecrypt", a.ID(), b.ID(), err)
	}
	// Altered wrapped bytes do not unwrap (TestUnwrapV2Rejects has more).
	c, wrappedC, _ := d.New()
	for _, w := range [][]byte{
		append(bytes.Clone(wrappedC[:len(wrappedC)-1]), wrappedC[len(wrappedC)-1]^1),
		append([]byte{wrappedV1}, wrappedC[1:]...),
		append([]byte{0x03}, wrappedC[1:]...),
		nil,
		wrappedC[:20],
	} {
		store.put(c.ID(), w)
		// A Get that wrongly succeeded would cache the key; forget it so
		// each case reads the store.
		d.Forget(c.ID())
		if _, err := d.Get(ctx, c.ID()); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Get of altered wrapped key = %v, want ErrDecrypt", err)
		}
	}

	// Malformed ids are refused before the store is asked.
	for _, id := range []string{"", "dk_", "dk_XYZ", "dk_" + strings.Repeat("A", 32), "../" + dk.ID()} {
		if _, err := d.Get(ctx, id); err == nil {
			t.Errorf("Get(%q) succeeded", id)
		}
	}

	// Store errors are passed on, wrapped.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	e := newStoredKey(t, d, store)
	if _, err := d.Get(cctx, e.ID()); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with canceled context = %v, want context.Canceled", err)
	}
}

func TestDataKeysCacheBounded(t *testing.T) {
	ctx := context.Background()
	d, store, _, _, _ := newTestDataKeys(t, 2)
	var ids []string
	for range 5 {
		ids = append(ids, newStoredKey(t, d, store).ID())
	}
	for _, id := range ids {
		if _, err := d.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.cache.Len(); got != 2 {
		t.Errorf("cache holds %d keys, want 2", got)
	}
}

func TestDataKeysAfterKEKRotation(t *testing.T) {
	ctx := context.Background()
	d, store, k, dir, m := newTestDataKeys(t, 0)
	ad := AD{Ledger: testLedgerID, Entry: "evt_1", Field: "email"}
	before := newStoredKey(t, d, store)
	ctBefore, _ := before.Seal(ad, []byte(testEmail))

	if err := k.Rotate(ctx, KeysetDataKey); err != nil {
		t.Fatal(err)
	}
	after := newStoredKey(t, d, store)
	ctAfter, _ := after.Seal(ad, []byte(testEmail))

	// A fresh process: keysets from disk, empty cache.
	k2, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	d2 := NewDataKeys(k2, store, 0)
	for _, tc := range []struct {
		id string
		ct []byte
	}{{before.ID(), ctBefore}, {after.ID(), ctAfter}} {
		dk, err := d2.Get(ctx, tc.id)
		if err != nil {
			t.Fatalf("Get(%s) after KEK rotation: %v", tc.id, err)
		}
		if got, err := dk.Open(ad, tc.ct); err != nil || string(got) != testEmail {
			t.Errorf("Open after KEK rotation = %q, %v", got, err)
		}
	}
}

func TestDataKeysConcurrentForget(t *testing.T) {
	// Run with -race: Get, New and Forget from many goroutines, and a
	// destroyed key never comes back once Forget has returned.
	ctx := context.Background()
	d, store, _, _, _ := newTestDataKeys(t, 4)
	dks := make([]*DataKey, 8)
	for i := range dks {
		dks[i] = newStoredKey(t, d, store)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := dks[(g+i)%len(dks)].ID()
				if _, err := d.Get(ctx, id); err != nil && !errors.Is(err, ErrDataKeyDestroyed) {
					t.Errorf("Get: %v", err)
					return
				}
				if i%50 == 0 {
					d.Forget(id)
				}
			}
		}()
	}
	victim := dks[0].ID()
	store.destroy(victim)
	d.Forget(victim)
	wg.Wait()
	if _, err := d.Get(ctx, victim); !errors.Is(err, ErrDataKeyDestroyed) {
		t.Errorf("Get of destroyed key after Forget = %v, want ErrDataKeyDestroyed", err)
	}
}

func TestNoPersonalDataInFiles(t *testing.T) {
	// Write what the ledger would persist for one event (token, sealed
	// fields, wrapped key) into the data dir and check that no PAN, name or
	// email is readable there.
	d, store, k, dir, _ := newTestDataKeys(t, 0)
	card, err := k.Tokenize(testPAN)
	if err != nil {
		t.Fatal(err)
	}
	dk, wrapped, err := d.New()
	if err != nil {
		t.Fatal(err)
	}
	store.put(dk.ID(), wrapped)
	var out bytes.Buffer
	out.WriteString(card.Token + "\n" + k.BlindIndex("email", testEmail) + "\n")
	out.Write(wrapped)
	for field, v := range map[string]string{"cardholder_name": testName, "email": testEmail, "card_token": card.Token} {
		ct, err := dk.Seal(AD{Ledger: testLedgerID, Entry: "evt_1", Field: field}, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		out.Write(ct)
	}
	if err := os.WriteFile(filepath.Join(dir, "entries.bin"), out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	scanDirFor(t, filepath.Dir(dir), testPAN, testName, testEmail, "Zaphod", "testcardholder")
}
