package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// stripeFixture returns a webhook/testdata Stripe event as a tree (numbers
// kept as json.Number) under a fresh event id, so that every variant is a
// new delivery rather than a conflicting redelivery.
func stripeFixture(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("webhook/testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	m["id"] = fmt.Sprintf("evt_hostile_%d", fixtureSeq.Add(1))
	return m
}

var fixtureSeq atomic.Int64

func dataObjectOf(m map[string]any) map[string]any {
	return m["data"].(map[string]any)["object"].(map[string]any)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIngestRefusesEventTimesOutsideTheIndexRange: an occurred_at (or a
// Stripe created) whose nanoseconds since 1970 do not fit the index's
// unsigned 64-bit key part is a 400, stores nothing, and leaves the
// transaction list pageable to its end.
func TestIngestRefusesEventTimesOutsideTheIndexRange(t *testing.T) {
	h := newHarness(t)
	for i, at := range []string{
		"1600-01-01T00:00:00Z", "1677-09-21T00:00:00Z", "1969-12-31T23:59:59Z",
		"2262-04-12T00:00:00Z", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
	} {
		size := h.node.Ledger.Size()
		body := genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_range_%d", i), "transaction_id": fmt.Sprintf("pay_range_%d", i), "occurred_at": at})
		r := h.postStandard(fmt.Sprintf("msg_range_%d", i), body)
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_field" {
			t.Errorf("occurred_at %s: %d %s, want 400 invalid_field", at, r.Status, r.Body)
			continue
		}
		if h.node.Ledger.Size() != size {
			t.Errorf("occurred_at %s: a refused event appended an entry", at)
		}
		if year := at[:4]; strings.Contains(string(r.Body), year) {
			t.Errorf("occurred_at %s: the answer echoes the input: %s", at, r.Body)
		}
	}
	for _, created := range []string{"10000000000", "9214646400", "253402300799"} {
		ev := stripeFixture(t, "stripe-charge-succeeded.json")
		ev["created"] = json.Number(created)
		r := h.postStripe(mustJSON(t, ev))
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_field" {
			t.Errorf("created %s: %d %s, want 400 invalid_field", created, r.Status, r.Body)
		}
	}
	// Times at the edges of the range are stored, and the list pages
	// through every transaction in order.
	for i, at := range []string{"1970-01-01T00:00:00Z", "2026-11-20T14:03:11Z", "2261-12-31T23:59:59Z"} {
		body := genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_edge_%d", i), "transaction_id": fmt.Sprintf("pay_edge_%d", i), "occurred_at": at})
		if r := h.postStandard(fmt.Sprintf("msg_edge_%d", i), body); r.Status != http.StatusOK {
			t.Fatalf("occurred_at %s: %d %s", at, r.Status, r.Body)
		}
	}
	var seen []string
	for cursor, pages := "", 0; pages < 10; pages++ {
		r := h.do("auditor", "GET", "/v1/transactions?limit=1&cursor="+cursor, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		var page struct {
			Items []struct {
				TransactionID string `json:"transaction_id"`
			} `json:"items"`
			Next string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			seen = append(seen, it.TransactionID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if got := strings.Join(seen, ","); got != "pay_edge_0,pay_edge_1,pay_edge_2" {
		t.Errorf("paged list %s, want pay_edge_0,pay_edge_1,pay_edge_2", got)
	}
}

// TestIngestStripeRefusesMistypedMappedFields: a member paytrail maps is
// type-checked in every mapped event, also where this event type reads
// another member instead (charge.refunded maps amount_refunded, not
// amount). A string amount is a 400, never a 200.
func TestIngestStripeRefusesMistypedMappedFields(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		file, member string
		value        any
	}{
		{"stripe-charge-succeeded.json", "amount", "2599"},
		{"stripe-charge-succeeded.json", "amount_refunded", "0"},
		{"stripe-charge-refunded.json", "amount", "2599"},
		{"stripe-charge-refunded.json", "amount_captured", "2599"},
		{"stripe-charge-refunded.json", "captured", "true"},
		{"stripe-charge-refunded.json", "amount", json.Number("25.99")},
		{"stripe-charge-captured.json", "amount_refunded", false},
		{"stripe-charge-failed.json", "amount_captured", "0"},
		{"stripe-payment_intent-succeeded.json", "amount", "2599"},
		{"stripe-payment_intent-succeeded.json", "receipt_email", json.Number("7")},
		{"stripe-payment_intent-canceled.json", "amount_received", "0"},
	} {
		name := tc.file + "/" + tc.member
		ev := stripeFixture(t, tc.file)
		dataObjectOf(ev)[tc.member] = tc.value
		size := h.node.Ledger.Size()
		r := h.postStripe(mustJSON(t, ev))
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "invalid_field" {
			t.Errorf("%s as %T: %d %s, want 400 invalid_field", name, tc.value, r.Status, r.Body)
			continue
		}
		if !strings.Contains(string(r.Body), "data.object."+tc.member) {
			t.Errorf("%s: the answer does not name the field: %s", name, r.Body)
		}
		if h.node.Ledger.Size() != size {
			t.Errorf("%s: a refused event appended an entry", name)
		}
	}
	// The unmodified fixtures are still stored.
	for _, f := range []string{"stripe-charge-succeeded.json", "stripe-charge-refunded.json", "stripe-payment_intent-succeeded.json"} {
		if r := h.postStripe(mustJSON(t, stripeFixture(t, f))); r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", f, r.Status, r.Body)
		}
	}
}
