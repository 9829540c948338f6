package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// newWireSealer is a node's sealer over real keysets and a real key store,
// with no NATS: the wire encodings need only the sealer.
func newWireSealer(t testing.TB) (*DataKeySealer, *crypto.Keysets) {
	t.Helper()
	dir := t.TempDir()
	keys := newTestKeysets(t, dir)
	ks, err := keystore.Open(filepath.Join(dir, "keys"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return &DataKeySealer{LedgerID: "ledger-1", DataKeys: crypto.NewDataKeys(keys, ks, 0), Store: ks}, keys
}

// wireRecords are records of every shape the stream carries, with the
// nil/empty distinctions the JSON encoding keeps.
func wireRecords(t testing.TB, s *DataKeySealer, keys *crypto.Keysets, rng *rand.Rand) []ledger.Record {
	t.Helper()
	k, wrapped, err := s.DataKeys.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.PutWrapped(context.Background(), []ledger.WrappedKey{{ID: k.ID(), Wrapped: wrapped}}); err != nil {
		t.Fatal(err)
	}
	str := func() string {
		const alphabet = "abcXYZ019_-./:é€\"\\<>&\n\x00"
		r := []rune(alphabet)
		b := make([]rune, rng.IntN(12))
		for i := range b {
			b[i] = r[rng.IntN(len(r))]
		}
		return string(b)
	}
	blob := func() []byte {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	at := func() time.Time {
		return time.Unix(rng.Int64N(1<<34)-1<<33, rng.Int64N(1e9)).UTC()
	}
	payment := func() *ledger.PaymentBody {
		p := &ledger.PaymentBody{
			Source: str(), EventID: str(), WebhookID: str(), Type: ledger.TypeCaptured, ProcessorType: str(),
			TransactionID: str(), MerchantID: str(), Amount: rng.Int64() - 1<<62, Currency: str(), Status: str(),
			OccurredAt: at(), Brand: str(), SADRemoved: rng.IntN(2) == 1, DataKey: k.ID(),
		}
		for range rng.IntN(3) {
			p.AltIDs = append(p.AltIDs, str())
		}
		if n := rng.IntN(4); n > 0 {
			p.Sealed = map[string][]byte{}
			for i := range n {
				p.Sealed[fmt.Sprintf("f%d%s", i, str())] = blob()
			}
		}
		return p
	}
	id := ledger.NewRecordID()
	email := keys.BlindIndex("email", "someone@example.com")
	return []ledger.Record{
		{Kind: ledger.KindPayment, ID: id, Time: at(), Policy: 1, Body: payment(),
			Unique: &ledger.Unique{Key: "webhook/" + str(), Digest: blob()},
			Link:   &ledger.SubjectLink{TransactionID: str(), DataKey: k.ID(), Subjects: []string{email, "tok_x"}}},
		{Kind: ledger.KindPayment, ID: ledger.NewRecordID(), Time: at(), Body: *payment(),
			Link: &ledger.SubjectLink{TransactionID: str()}},
		{Kind: ledger.KindPayment, ID: ledger.NewRecordID(), Time: at(), Body: &ledger.PaymentBody{}},
		{Kind: ledger.KindAccess, ID: ledger.NewRecordID(), Time: at(), Policy: rng.IntN(5),
			Body: ledger.AccessBody{ActorID: str(), Action: str(), Merchants: []string{str()}, Status: 200}},
		{Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: at(), Body: ledger.AdminBody{Details: map[string]string{"a": str()}},
			State: []ledger.StateRow{
				{Table: "principals", Key: str(), Value: blob()},
				{Table: "principals", Key: str()},                  // a delete
				{Table: "principals", Key: str(), Value: []byte{}}, // an empty value
				{Table: "corrections", Key: str(), AppendSeq: true},
			}},
		{Kind: ledger.KindSubjectRequest, ID: ledger.NewRecordID(), Time: at(), Body: json.RawMessage(`{"kind":"erasure","n":[1,2]}`),
			Erase: &ledger.Erasure{Transactions: []string{str(), str()}},
			State: []ledger.StateRow{{Table: ledger.TableRestricted, Key: email, Value: blob()}}},
		{Kind: ledger.KindReconciliation, ID: ledger.NewRecordID(), Time: at(), Body: map[string]any{"rows": 3.0}},
		{Cut: true},
		{Entry: []byte(`{"v":1,"seq":1,"kind":"access","id":"` + id + `"}`), Checkpoint: blob()},
		{State: []ledger.StateRow{{Table: "run", Key: str(), Value: blob()}}},
		{},
	}
}

// TestWireBinaryMatchesJSON pins the binary record encoding to the JSON
// one, its plain reference: every record decodes from both to the same
// record, and so makes the same entry and rows on every node.
func TestWireBinaryMatchesJSON(t *testing.T) {
	s, keys := newWireSealer(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		for i, rec := range wireRecords(t, s, keys, rng) {
			bin, err := encodeRecord(ctx, s, rec)
			if err != nil {
				t.Fatal(err)
			}
			js, err := encodeRecordJSON(ctx, s, rec)
			if err != nil {
				t.Fatal(err)
			}
			if bin[0] != wireBinary || js[0] != '{' {
				t.Fatalf("record %d: encodings start with %#x and %q", i, bin[0], js[0])
			}
			fromBin, err := decodeRecord(ctx, s, bin)
			if err != nil {
				t.Fatalf("round %d record %d: binary: %v", round, i, err)
			}
			fromJSON, err := decodeRecord(ctx, s, js)
			if err != nil {
				t.Fatalf("round %d record %d: JSON: %v", round, i, err)
			}
			if !reflect.DeepEqual(fromBin, fromJSON) {
				t.Fatalf("round %d record %d decodes differently:\nbinary %+v\nJSON   %+v", round, i, fromBin, fromJSON)
			}
			if rec.Link != nil && len(rec.Link.Subjects) > 0 && !reflect.DeepEqual(fromBin.Link.Subjects, rec.Link.Subjects) {
				t.Fatalf("record %d: subjects %q, want %q", i, fromBin.Link.Subjects, rec.Link.Subjects)
			}
			if rec.Kind == ledger.KindPayment {
				if _, ok := fromBin.Body.(*ledger.PaymentBody); !ok {
					t.Fatalf("record %d: payment body decodes as %T", i, fromBin.Body)
				}
			}
			// What links a record to a person travels sealed in both.
			for _, enc := range [][]byte{bin, js} {
				if bytes.Contains(enc, []byte(keys.BlindIndex("email", "someone@example.com"))) {
					t.Fatalf("record %d carries a blind index in clear", i)
				}
			}
			if rec.Kind != "" && len(bin) > len(js) {
				t.Errorf("record %d: binary %d bytes, JSON %d", i, len(bin), len(js))
			}
		}
	}
}

// TestWireBinaryRejectsDamage checks that a damaged binary record is
// malformed (every node skips it alike), never misread.
func TestWireBinaryRejectsDamage(t *testing.T) {
	s, keys := newWireSealer(t)
	ctx := context.Background()
	rec := wireRecords(t, s, keys, rand.New(rand.NewPCG(3, 4)))[0]
	bin, err := encodeRecord(ctx, s, rec)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n < len(bin); n++ {
		if _, err := decodeRecord(ctx, s, bin[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decodes", n, len(bin))
		}
	}
	if _, err := decodeRecord(ctx, s, append(bytes.Clone(bin), 0)); err == nil {
		t.Fatal("a record with a trailing byte decodes")
	}
	// A record for a newer node: refused, and not as malformed (which
	// every node would skip), so that this node waits for an upgrade.
	for _, b := range [][]byte{{0x03, 1, 2}, []byte(`{"v":3}`)} {
		_, err := decodeRecord(ctx, s, b)
		if err == nil || errors.Is(err, errMalformed) {
			t.Fatalf("record %q of an unknown version: %v", b, err)
		}
	}
	if _, err := decodeRecord(ctx, s, nil); !errors.Is(err, errMalformed) {
		t.Fatalf("an empty record: %v, want malformed", err)
	}
}

// FuzzWireBinary checks that any bytes either fail to decode or decode to
// a record whose encoding decodes to the same record again; never a panic,
// never an allocation beyond the record's size.
func FuzzWireBinary(f *testing.F) {
	s, keys := newWireSealer(f)
	ctx := context.Background()
	for _, rec := range wireRecords(f, s, keys, rand.New(rand.NewPCG(5, 6))) {
		w, err := sealRecord(ctx, s, rec, true)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w.appendBinary(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w wireRecord
		if w.decodeBinary(b) != nil {
			return
		}
		again := w.appendBinary(nil)
		var w2 wireRecord
		if err := w2.decodeBinary(again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(w, w2) {
			t.Fatalf("record changes on re-encoding:\n%+v\n%+v", w, w2)
		}
	})
}

// TestStreamOfJSONRecordsReplays checks that a stream written by an
// earlier build (JSON records) and continued by this one (binary records)
// is applied alike by every node, also by one built from the start, and
// that the subjects of the JSON records are searchable.
func TestStreamOfJSONRecordsReplays(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.start(2)
	ctx := context.Background()
	a := tc.nodes[0]
	for i := range 10 {
		rec := tc.payment(t, a, fmt.Sprintf("evt_j%d", i), fmt.Sprintf("tx%d", i%3), "old@example.org")
		data, err := encodeRecordJSON(ctx, a.node.opts.Sealer, rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.conn.js.Publish(ctx, a.conn.subject, data); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if _, err := a.node.Append(ctx, tc.payment(t, a, fmt.Sprintf("evt_b%d", i), fmt.Sprintf("tx%d", i%3), "old@example.org")); err != nil {
			t.Fatal(err)
		}
	}
	tc.nodes = append(tc.nodes, tc.startNode("rebuilt", t.TempDir()))
	tc.converge(t)
	for _, n := range tc.nodes {
		if n.ledger.Size() < 20 {
			t.Fatalf("node %s holds %d entries, want at least 20", n.name, n.ledger.Size())
		}
		if txs, _ := n.ledger.SubjectTransactions(tc.keys.BlindIndex("email", "old@example.org")); len(txs) != 3 {
			t.Fatalf("node %s finds %d transactions of the cardholder, want 3", n.name, len(txs))
		}
	}
}
