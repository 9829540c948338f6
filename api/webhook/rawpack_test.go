package webhook_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/paytrail/paytrail/api/webhook"
)

func newRawCodec(tb testing.TB) *webhook.RawCodec {
	tb.Helper()
	c, err := webhook.NewRawCodec()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// fixtureRaws returns the Raw of every fixture event.
func fixtureRaws(tb testing.TB) [][]byte {
	tb.Helper()
	var raws [][]byte
	for _, body := range webhook.Fixtures(tb, "generic-") {
		ev, err := webhook.NormalizeGeneric(body, "m_default")
		if err != nil {
			tb.Fatal(err)
		}
		raws = append(raws, ev.Raw)
	}
	for _, body := range webhook.Fixtures(tb, "stripe-") {
		ev, err := webhook.NormalizeStripe(body, "m_default")
		if err != nil {
			tb.Fatal(err)
		}
		raws = append(raws, ev.Raw)
	}
	return raws
}

func TestRawPackFixtures(t *testing.T) {
	c := newRawCodec(t)
	for _, raw := range fixtureRaws(t) {
		p := c.Pack(raw)
		if p[0] != 0x01 || len(p) >= len(raw)*3/4 {
			t.Errorf("packed %d bytes into %d, want format 1 under 3/4 of it: %.20q", len(raw), len(p), p)
		}
		t.Logf("%d -> %d bytes", len(raw), len(p))
		got, err := c.Unpack(p, len(raw))
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("unpack: %v\n got %s\nwant %s", err, got, raw)
		}
		if _, err := c.Unpack(p, len(raw)-1); !errors.Is(err, webhook.ErrRawPacking) {
			t.Errorf("unpack under a limit one byte short: %v", err)
		}
	}
}

// A payload sealed before packing existed is Raw itself: it unpacks
// unchanged, and so does one that compression would not shorten.
func TestRawUnpackUnpacked(t *testing.T) {
	c := newRawCodec(t)
	for _, raw := range append(fixtureRaws(t), []byte(`{}`), []byte(`{"a":"x"}`), []byte{}) {
		got, err := c.Unpack(raw, len(raw))
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("unpack of %s: %v, %s", raw, err, got)
		}
	}
	if p := c.Pack([]byte(`{}`)); string(p) != `{}` {
		t.Errorf("pack of {} = %q, want it unchanged", p)
	}
}

func TestRawUnpackRefuses(t *testing.T) {
	c := newRawCodec(t)
	raw := fixtureRaws(t)[0]
	packed := c.Pack(raw)
	// An S2 block that says it holds 2^20 bytes and holds them: past the
	// limit.
	big := append([]byte{0x01}, s2.Encode(nil, bytes.Repeat([]byte("a"), 1<<20))...)
	for name, b := range map[string][]byte{
		"text":              []byte("hello"),
		"array":             []byte(`[1,2]`),
		"another format":    append([]byte{0x02}, packed[1:]...),
		"format byte only":  {0x01},
		"truncated":         packed[:len(packed)-3],
		"length overflow":   {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"past the limit":    big,
		"JSON past a limit": bytes.Repeat([]byte("{"), 1<<16+1),
	} {
		if got, err := c.Unpack(b, 1<<16); !errors.Is(err, webhook.ErrRawPacking) {
			t.Errorf("%s: unpacked %d bytes, err %v; want ErrRawPacking", name, len(got), err)
		}
	}
}

// The dictionary of payloads already sealed in ledgers must never change.
func TestRawDictionaryFrozen(t *testing.T) {
	b, err := os.ReadFile("raw-dict-v1.txt")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	const want = "f4570c01c21948c48ac0c96a94e3c89244698cf2ba7a1150a3afce19c960864b"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("raw-dict-v1.txt has sha256 %s, want %s: packed payloads in ledgers need the dictionary they were packed with; add a new one with a new format byte instead", got, want)
	}
}

func FuzzRawPack(f *testing.F) {
	c := newRawCodec(f)
	for _, raw := range fixtureRaws(f) {
		f.Add(raw)
		f.Add(c.Pack(raw))
	}
	f.Add([]byte{})
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := c.Pack(b)
		got, err := c.Unpack(p, len(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %q: %v, %q", b, err, got)
		}
		if len(p) > len(b)+32 {
			t.Errorf("packed %d bytes into %d", len(b), len(p))
		}
		// Any bytes, as if opened from a ledger: an answer within the
		// limit or ErrRawPacking, never a panic.
		if got, err := c.Unpack(b, 1<<16); err != nil && !errors.Is(err, webhook.ErrRawPacking) {
			t.Fatalf("unpack error does not wrap ErrRawPacking: %v", err)
		} else if len(got) > 1<<16 {
			t.Fatalf("unpacked %d bytes past the limit", len(got))
		}
	})
}
