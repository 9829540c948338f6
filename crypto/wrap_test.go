package crypto

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// newDataKeyV1 is DataKeys.New as it was before format v2, kept as the
// reference for the v1 wrapped bytes that earlier data dirs hold: a fresh
// one-key Tink keyset, its primitive as the data key, and the keyset
// written wrapped by the KEK.
func newDataKeyV1(d *DataKeys) (*DataKey, []byte, error) {
	id, err := newTestDataKeyID()
	if err != nil {
		return nil, nil, err
	}
	params, err := dataKeyParameters()
	if err != nil {
		return nil, nil, err
	}
	mgr := keyset.NewManager()
	kid, err := mgr.AddNewKeyFromParameters(params)
	if err != nil {
		return nil, nil, err
	}
	a, w, err := sealKeysetV1(mgr, kid, d.keysets.state.Load().kek, id)
	if err != nil {
		return nil, nil, err
	}
	return &DataKey{id: id, aead: a}, w, nil
}

// wrapKeyBytesV1 wraps given key bytes in format v1 the way the old New
// did, and returns the keyset's own primitive too.
func wrapKeyBytesV1(kek tink.AEAD, id string, raw []byte) (tink.AEAD, []byte, error) {
	params, err := dataKeyParameters()
	if err != nil {
		return nil, nil, err
	}
	key, err := aesgcm.NewKey(secretdata.NewBytesFromData(raw, insecuresecretdataaccess.Token{}), 0, params)
	if err != nil {
		return nil, nil, err
	}
	mgr := keyset.NewManager()
	kid, err := mgr.AddKey(key)
	if err != nil {
		return nil, nil, err
	}
	return sealKeysetV1(mgr, kid, kek, id)
}

// sealKeysetV1 makes key kid the primary of mgr's one-key keyset and
// returns its primitive and the keyset as v1 wrapped bytes under kek.
func sealKeysetV1(mgr *keyset.Manager, kid uint32, kek tink.AEAD, id string) (tink.AEAD, []byte, error) {
	if err := mgr.SetPrimary(kid); err != nil {
		return nil, nil, err
	}
	h, err := mgr.Handle()
	if err != nil {
		return nil, nil, err
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, nil, err
	}
	w, err := writeV1(h, kek, id, labelDataKeyWrapV1)
	return a, w, err
}

// writeV1 writes h as v1 wrapped bytes with associated data label ‖ id.
func writeV1(h *keyset.Handle, kek tink.AEAD, id, label string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(wrappedV1)
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), kek, encodeParts(label, id)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func newTestDataKeyID() (string, error) {
	var rnd [dataKeyIDBytes]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return dataKeyIDPrefix + hex.EncodeToString(rnd[:]), nil
}

// sealTest seals testEmail for entry evt_1 under k.
func sealTest(t testing.TB, k *DataKey) []byte {
	t.Helper()
	ct, err := k.Seal(AD{Ledger: testLedgerID, Entry: "evt_1", Field: "email"}, []byte(testEmail))
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// opens reports whether k opens ct, made by sealTest.
func opens(k *DataKey, ct []byte) bool {
	pt, err := k.Open(AD{Ledger: testLedgerID, Entry: "evt_1", Field: "email"}, ct)
	return err == nil && string(pt) == testEmail
}

func TestWrapV2Format(t *testing.T) {
	ctx := context.Background()
	d, store, k, dir, m := newTestDataKeys(t, 0)
	dk, w, err := d.New()
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != wrappedV2Size || wrappedV2Size != 66 {
		t.Fatalf("len(wrapped) = %d (wrappedV2Size %d), want 66", len(w), wrappedV2Size)
	}
	if w[0] != wrappedV2 || w[1] != tinkStartByte {
		t.Fatalf("wrapped starts % x, want 02 01", w[:2])
	}
	if by, err := WrappedBy(w); err != nil || by != k.DataKeyPrimary() {
		t.Fatalf("WrappedBy = %q, %v, want the primary %s", by, err, k.DataKeyPrimary())
	}
	if got := hex.EncodeToString(w[2:6]); got != k.DataKeyPrimary() {
		t.Errorf("bytes 2..5 = %s, want the KEK key id %s", got, k.DataKeyPrimary())
	}
	// The body is exactly the KEK's ciphertext of the key bytes under
	// the v2 associated data.
	raw, err := k.state.Load().kek.Decrypt(w[1:], encodeParts(labelDataKeyWrapV2, dk.ID()))
	if err != nil || len(raw) != dataKeySize {
		t.Fatalf("KEK decrypt of the body = %d bytes, %v", len(raw), err)
	}
	ct := sealTest(t, dk)

	// Round trip through the store in a fresh process.
	store.put(dk.ID(), w)
	k2, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewDataKeys(k2, store, 0).Get(ctx, dk.ID())
	if err != nil {
		t.Fatalf("Get v2: %v", err)
	}
	if !opens(got, ct) {
		t.Fatal("key unwrapped from v2 does not open a field sealed by New's key")
	}

	// Two keys differ, and so do two wrappings.
	dk2, w2, _ := d.New()
	if bytes.Equal(w[6:], w2[6:]) || opens(dk2, ct) {
		t.Error("two New keys are not independent")
	}
}

// v1 bytes as earlier data dirs hold them still unwrap, under the primary
// and under an old KEK key, into the key they were made with.
func TestUnwrapV1(t *testing.T) {
	ctx := context.Background()
	d, store, k, dir, m := newTestDataKeys(t, 0)
	old, wOld, err := newDataKeyV1(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(wOld) < 100 || wOld[0] != wrappedV1 {
		t.Fatalf("reference v1 bytes: % x", wOld[:1])
	}
	oldKEK := k.DataKeyPrimary()
	if err := k.Rotate(ctx, KeysetDataKey); err != nil {
		t.Fatal(err)
	}
	cur, wCur, err := newDataKeyV1(d)
	if err != nil {
		t.Fatal(err)
	}
	store.put(old.ID(), wOld)
	store.put(cur.ID(), wCur)
	k2, err := LoadKeysets(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	d2 := NewDataKeys(k2, store, 0)
	for _, tc := range []struct {
		key *DataKey
		w   []byte
		by  string
	}{{old, wOld, oldKEK}, {cur, wCur, k.DataKeyPrimary()}} {
		if by, err := WrappedBy(tc.w); err != nil || by != tc.by {
			t.Errorf("WrappedBy(v1) = %q, %v, want %s", by, err, tc.by)
		}
		got, err := d2.Get(ctx, tc.key.ID())
		if err != nil {
			t.Fatalf("Get v1: %v", err)
		}
		// Both directions: the keyset primitive of the old New and the
		// key built from the unwrapped bytes are the same AEAD.
		if !opens(got, sealTest(t, tc.key)) || !opens(tc.key, sealTest(t, got)) {
			t.Error("key unwrapped from v1 and the v1 keyset's primitive do not open each other's fields")
		}
	}
}

// A field sealed under a data key opens under the same key whichever format
// wraps it: v1 re-wrapped as v2 by Rewrap, and v2 (New) written as v1 by
// the reference.
func TestWrapV1V2SameKey(t *testing.T) {
	ctx := context.Background()
	d, store, k, _, _ := newTestDataKeys(t, 0)
	kek := k.state.Load().kek

	t.Run("v1 to v2", func(t *testing.T) {
		dk1, w1, err := newDataKeyV1(d)
		if err != nil {
			t.Fatal(err)
		}
		ct1 := sealTest(t, dk1)
		w2, changed, err := d.Rewrap(dk1.ID(), w1)
		if err != nil || !changed {
			t.Fatalf("Rewrap(v1 under the primary) = %v, %v; want a v2 rewrap", changed, err)
		}
		if len(w2) != wrappedV2Size || w2[0] != wrappedV2 {
			t.Fatalf("Rewrap gave %d bytes starting %x, want v2", len(w2), w2[0])
		}
		if by, _ := WrappedBy(w2); by != k.DataKeyPrimary() {
			t.Errorf("re-wrapped by %s, want %s", by, k.DataKeyPrimary())
		}
		store.put(dk1.ID(), w2)
		dk2, err := NewDataKeys(k, store, 0).Get(ctx, dk1.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !opens(dk2, ct1) || !opens(dk1, sealTest(t, dk2)) {
			t.Error("the key re-wrapped as v2 and its v1 original do not open each other's fields")
		}
	})

	t.Run("v2 to v1", func(t *testing.T) {
		dk2, w2, err := d.New()
		if err != nil {
			t.Fatal(err)
		}
		ct2 := sealTest(t, dk2)
		raw, err := unwrapKeyBytes(kek, dk2.ID(), w2)
		if err != nil {
			t.Fatal(err)
		}
		ksAEAD, w1, err := wrapKeyBytesV1(kek, dk2.ID(), raw)
		if err != nil {
			t.Fatal(err)
		}
		// The Tink keyset primitive of the same bytes opens New's field,
		// and New's key opens its field.
		ad := encodeParts(labelField, testLedgerID, "evt_1", "email")
		if pt, err := ksAEAD.Decrypt(ct2, ad); err != nil || string(pt) != testEmail {
			t.Errorf("keyset primitive of New's key bytes: %q, %v", pt, err)
		}
		ct1, _ := ksAEAD.Encrypt([]byte(testEmail), ad)
		if !opens(dk2, ct1) {
			t.Error("New's key does not open a field the keyset primitive sealed")
		}
		store.put(dk2.ID(), w1)
		dk1, err := NewDataKeys(k, store, 0).Get(ctx, dk2.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !opens(dk1, ct2) {
			t.Error("the key wrapped as v1 does not open the field sealed under its v2 original")
		}
	})
}

// Every alteration of v2 wrapped bytes fails to unwrap, with ErrDecrypt and
// a message holding no key material.
func TestUnwrapV2Rejects(t *testing.T) {
	d, _, k, _, _ := newTestDataKeys(t, 0)
	kek := k.state.Load().kek
	dk, w, err := d.New()
	if err != nil {
		t.Fatal(err)
	}
	id := dk.ID()
	other, _, _ := d.New()
	raw, err := unwrapKeyBytes(kek, id, w)
	if err != nil {
		t.Fatal(err)
	}
	v2Of := func(pt []byte, label string) []byte {
		ct, err := kek.Encrypt(pt, encodeParts(label, id))
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{wrappedV2}, ct...)
	}
	cases := []struct {
		name string
		id   string
		w    []byte
	}{
		{"other id", other.ID(), w},
		{"v1 label", id, v2Of(raw, labelDataKeyWrapV1)},
		{"field label", id, v2Of(raw, labelField)},
		{"31-byte key", id, v2Of(raw[:31], labelDataKeyWrapV2)},
		{"33-byte key", id, v2Of(append(bytes.Clone(raw), 0), labelDataKeyWrapV2)},
		{"empty key", id, v2Of(nil, labelDataKeyWrapV2)},
		{"read as v1", id, append([]byte{wrappedV1}, w[1:]...)},
		{"appended byte", id, append(bytes.Clone(w), 0)},
		{"empty", id, nil},
	}
	for _, v := range []byte{0x00, 0x03, 0xff} {
		cases = append(cases, struct {
			name string
			id   string
			w    []byte
		}{fmt.Sprintf("version %#x", v), id, append([]byte{v}, w[1:]...)})
	}
	for i := range w {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(w)
			c[i] ^= bit
			cases = append(cases, struct {
				name string
				id   string
				w    []byte
			}{fmt.Sprintf("byte %d ^ %#x", i, bit), id, c})
		}
	}
	for n := range len(w) {
		cases = append(cases, struct {
			name string
			id   string
			w    []byte
		}{fmt.Sprintf("first %d bytes", n), id, w[:n]})
	}
	// A v1 keyset wrapped with the v2 label is refused as well.
	_, v1, err := wrapKeyBytesV1(kek, id, raw)
	if err != nil {
		t.Fatal(err)
	}
	ev1, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(v1[1:])), kek, encodeParts(labelDataKeyWrapV1, id))
	if err != nil {
		t.Fatal(err)
	}
	v1v2Label, err := writeV1(ev1, kek, id, labelDataKeyWrapV2)
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name string
		id   string
		w    []byte
	}{"v1 with v2 label", id, v1v2Label}, struct {
		name string
		id   string
		w    []byte
	}{"v1 as v2", id, append([]byte{wrappedV2}, v1[1:]...)})

	secrets := []string{string(raw), hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw)}
	for _, tc := range cases {
		got, err := d.unwrap(tc.id, tc.w)
		if !errors.Is(err, ErrDecrypt) || got != nil {
			t.Errorf("%s: unwrap = %v, %v; want ErrDecrypt", tc.name, got, err)
			continue
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q holds the key", tc.name, err)
			}
		}
	}
	// The original still unwraps: the cases above failed for their change.
	if got, err := d.unwrap(id, w); err != nil || !opens(got, sealTest(t, dk)) {
		t.Fatalf("unwrap of the original = %v", err)
	}
}

func TestWrappedByRejects(t *testing.T) {
	d, _, _, _, _ := newTestDataKeys(t, 0)
	_, w2, _ := d.New()
	_, w1, err := newDataKeyV1(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range [][]byte{
		nil,
		{0x00},
		append([]byte{0x03}, w2[1:]...),
		w2[:5],
		append([]byte{wrappedV2, 0x00}, w2[2:]...), // not a Tink prefix
		{wrappedV1},
		w1[:10],
	} {
		if by, err := WrappedBy(w); !errors.Is(err, ErrDecrypt) {
			t.Errorf("WrappedBy(% x) = %q, %v; want ErrDecrypt", w, by, err)
		}
	}
}

// Rewrap moves v1 (any KEK) and v2 under an old KEK to v2 under the
// primary, keeps v2 under the primary, and refuses bytes of another id.
func TestRewrapV1V2(t *testing.T) {
	ctx := context.Background()
	d, store, k, _, _ := newTestDataKeys(t, 0)
	type key struct {
		dk *DataKey
		w  []byte
		ct []byte
	}
	mk := func(v1 bool) key {
		var dk *DataKey
		var w []byte
		var err error
		if v1 {
			dk, w, err = newDataKeyV1(d)
		} else {
			dk, w, err = d.New()
		}
		if err != nil {
			t.Fatal(err)
		}
		return key{dk, w, sealTest(t, dk)}
	}
	oldV1, oldV2 := mk(true), mk(false)
	if err := k.Rotate(ctx, KeysetDataKey); err != nil {
		t.Fatal(err)
	}
	primary := k.DataKeyPrimary()
	curV1, curV2 := mk(true), mk(false)

	if out, changed, err := d.Rewrap(curV2.dk.ID(), curV2.w); err != nil || changed || out != nil {
		t.Errorf("Rewrap(v2 under the primary) = %d bytes, %v, %v; want unchanged", len(out), changed, err)
	}
	for name, kk := range map[string]key{"v1 old KEK": oldV1, "v2 old KEK": oldV2, "v1 primary": curV1} {
		// Bytes of another id are refused, whatever their format.
		if _, _, err := d.Rewrap(curV2.dk.ID(), kk.w); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: Rewrap under another id = %v, want ErrDecrypt", name, err)
		}
		out, changed, err := d.Rewrap(kk.dk.ID(), kk.w)
		if err != nil || !changed {
			t.Fatalf("%s: Rewrap = %v, %v", name, changed, err)
		}
		if len(out) != wrappedV2Size || out[0] != wrappedV2 {
			t.Errorf("%s: re-wrapped to %d bytes, version %#x; want v2", name, len(out), out[0])
		}
		if by, _ := WrappedBy(out); by != primary {
			t.Errorf("%s: re-wrapped by %s, want %s", name, by, primary)
		}
		if _, changed, _ := d.Rewrap(kk.dk.ID(), out); changed {
			t.Errorf("%s: a second Rewrap changed it again", name)
		}
		store.put(kk.dk.ID(), out)
		d.Forget(kk.dk.ID())
		got, err := d.Get(ctx, kk.dk.ID())
		if err != nil || !opens(got, kk.ct) {
			t.Errorf("%s: key after Rewrap does not open its field (%v)", name, err)
		}
	}
	// Altered bytes under an old KEK fail to re-wrap.
	bad := bytes.Clone(oldV2.w)
	bad[len(bad)-1] ^= 1
	if _, _, err := d.Rewrap(oldV2.dk.ID(), bad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap of altered v2 = %v, want ErrDecrypt", err)
	}
}

// FuzzUnwrap checks that no bytes panic unwrap, WrappedBy or Rewrap, that
// every failure is ErrDecrypt, and that bytes unwrap (or re-wrap) for an id
// only into the key made for that id: never under another one.
func FuzzUnwrap(f *testing.F) {
	ctx := context.Background()
	d, _, k, _, _ := newTestDataKeys(f, 0)
	type made struct {
		id string
		ct []byte
	}
	var keys []made
	add := func(dk *DataKey, w []byte, err error) {
		if err != nil {
			f.Fatal(err)
		}
		keys = append(keys, made{dk.ID(), sealTest(f, dk)})
		f.Add(w)
		f.Add(w[:len(w)/2])
	}
	add(d.New())
	add(newDataKeyV1(d))
	if err := k.Rotate(ctx, KeysetDataKey); err != nil {
		f.Fatal(err)
	}
	add(d.New())
	add(newDataKeyV1(d))
	f.Add([]byte{})
	f.Add([]byte{wrappedV2, tinkStartByte})
	f.Add(bytes.Repeat([]byte{wrappedV2}, wrappedV2Size))

	kekIDs := map[string]bool{}
	for _, ks := range k.Status() {
		if ks.Name == KeysetDataKey {
			for _, ki := range ks.Keys {
				kekIDs[ki.ID] = true
			}
		}
	}
	if len(kekIDs) != 2 {
		f.Fatalf("datakey keyset has %d keys, want 2", len(kekIDs))
	}
	primary := k.DataKeyPrimary()

	f.Fuzz(func(t *testing.T, w []byte) {
		by, byErr := WrappedBy(w)
		if byErr != nil && !errors.Is(byErr, ErrDecrypt) {
			t.Fatalf("WrappedBy error %v is not ErrDecrypt", byErr)
		}
		for _, m := range keys {
			dk, err := d.unwrap(m.id, w)
			if err != nil {
				if !errors.Is(err, ErrDecrypt) || dk != nil {
					t.Fatalf("unwrap(%s) = %v, %v; want ErrDecrypt", m.id, dk, err)
				}
			} else {
				if !opens(dk, m.ct) {
					t.Fatalf("bytes unwrapped under %s into a key that is not the one made for it", m.id)
				}
				if byErr != nil || !kekIDs[by] {
					t.Fatalf("unwrapped bytes name KEK %q (%v)", by, byErr)
				}
			}
			out, changed, err := d.Rewrap(m.id, w)
			switch {
			case err != nil:
				if !errors.Is(err, ErrDecrypt) {
					t.Fatalf("Rewrap error %v is not ErrDecrypt", err)
				}
			case !changed:
				if w[0] != wrappedV2 || by != primary {
					t.Fatalf("Rewrap left bytes of version %#x under %s unchanged", w[0], by)
				}
			default:
				got, err := d.unwrap(m.id, out)
				if err != nil || !opens(got, m.ct) {
					t.Fatalf("Rewrap under %s gave bytes that do not unwrap into its key (%v)", m.id, err)
				}
			}
		}
	})
}
