package api

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/paytrail/paytrail/api/witness"
)

// cosigningWitness is a stand-in witness written from formats'
// cosignature signer and x/mod's note: it cosigns whatever checkpoint it
// is sent (it keeps no state; package witness's tests check the
// protocol). down makes it answer 503.
type cosigningWitness struct {
	signer note.Signer
	vkey   string
	down   atomic.Bool
	stall  atomic.Bool // hold every request until the client gives up
	http   *httptest.Server
}

func newCosigningWitness(t testing.TB, name string) *cosigningWitness {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	w := &cosigningWitness{}
	if w.vkey, err = fnote.VKeyToCosignatureV1(vkey); err != nil {
		t.Fatal(err)
	}
	if w.signer, err = fnote.NewSignerForCosignatureV1(skey); err != nil {
		t.Fatal(err)
	}
	w.http = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.stall.Load() {
			// The body is read first: only then does net/http watch the
			// connection and cancel the context when the client goes.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		if w.down.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_, cp, _ := bytes.Cut(b, []byte("\n\n"))
		_, err := note.Open(cp, note.VerifierList())
		var u *note.UnverifiedNoteError
		if !errors.As(err, &u) {
			http.Error(rw, "malformed", 400)
			return
		}
		signed, _ := note.Sign(&note.Note{Text: u.Note.Text}, w.signer)
		rw.Write(signed[len(u.Note.Text)+1:])
	}))
	t.Cleanup(w.http.Close)
	return w
}

func (w *cosigningWitness) endpoint(name string) witness.Endpoint {
	return witness.Endpoint{Name: name, URL: w.http.URL, Key: w.vkey}
}

var testWitnessTiming = witness.Timing{Timeout: time.Second, Poll: 5 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

// checkReceipt verifies a tlog-proof receipt with formats' parser, x/mod's
// note and tlog: the log signature, the inclusion of the extra bytes at
// index, and returns the checkpoint and the number of valid cosignatures
// by ws.
func checkReceipt(t testing.TB, h *harness, receipt []byte, seq uint64, ws ...string) (*log.Checkpoint, int) {
	t.Helper()
	var p proof.TLogProof
	if err := p.Unmarshal(receipt); err != nil {
		t.Fatalf("not a tlog-proof: %v\n%s", err, receipt)
	}
	lv, err := note.NewVerifier(strings.TrimSpace(string(h.do("", "GET", "/v1/ledger/public-key", nil).Body)))
	if err != nil {
		t.Fatal(err)
	}
	vs := []note.Verifier{}
	for _, w := range ws {
		v, err := fnote.NewVerifierForCosignatureV1(w)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	cp, _, n, err := log.ParseCheckpoint(p.Checkpoint, lv.Name(), lv, vs...)
	if err != nil {
		t.Fatalf("receipt checkpoint: %v", err)
	}
	if p.Index != seq {
		t.Fatalf("index %d, want %d", p.Index, seq)
	}
	hashes := make([]tlog.Hash, len(p.Hashes))
	for i, x := range p.Hashes {
		hashes[i] = x
	}
	if err := tlog.CheckRecord(hashes, int64(cp.Size), tlog.Hash(cp.Hash), int64(p.Index), tlog.RecordHash(p.ExtraData)); err != nil {
		t.Fatalf("inclusion: %v", err)
	}
	e := h.do("auditor", "GET", fmt.Sprintf("/v1/entries/%d", seq), nil).json(t)
	if fmt.Sprint(e["entry"]) != b64std(p.ExtraData) {
		t.Fatal("the receipt's extra data is not the entry's stored bytes")
	}
	return cp, len(n.Sigs) - 1
}

func b64std(b []byte) string {
	j, _ := json.Marshal(b)
	return strings.Trim(string(j), `"`)
}

// waitCovered waits (at most 10 s) until a checkpoint covers seq.
func waitCovered(t testing.TB, h *harness, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cp, err := h.node.Ledger.LatestCheckpoint()
		if err == nil {
			var c log.Checkpoint
			text, _, _ := bytes.Cut(cp, []byte("\n\n"))
			if _, err := c.Unmarshal(append(text, '\n')); err == nil && c.Size > seq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers %d", seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func accessCount(t testing.TB, h *harness, action string) int {
	t.Helper()
	n := 0
	for seq := uint64(0); seq < h.node.Ledger.Size(); seq++ {
		e, err := h.node.Ledger.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(e.Bytes(), []byte(`"action":"`+action+`"`)) {
			n++
		}
	}
	return n
}

// TestEntryReceipt: a receipt verifies with standard tools alone, carries
// the entry's exact bytes, follows GET /v1/entries/{seq}'s scope and is
// recorded like it; tree_size picks the checkpoint.
func TestEntryReceipt(t *testing.T) {
	h := newHarness(t)
	r := h.postStandard("msg_r1", genericEvent(t, map[string]any{"id": "evt_r1"}))
	if r.Status != 200 {
		t.Fatalf("post: %d %s", r.Status, r.Body)
	}
	seq := uint64(r.json(t)["seq"].(float64))
	waitCovered(t, h, seq)
	before := accessCount(t, h, "entry.read")
	got := h.do("auditor", "GET", fmt.Sprintf("/v1/entries/%d/receipt", seq), nil)
	if got.Status != 200 || !strings.HasPrefix(got.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("receipt: %d %s", got.Status, got.Body)
	}
	if n := accessCount(t, h, "entry.read"); n != before+1 {
		t.Errorf("entry.read access entries went from %d to %d, want one more", before, n)
	}
	cp, _ := checkReceipt(t, h, got.Body, seq)
	h.assertNoCardholderData()

	// tree_size: a checkpoint issued, covering the entry.
	got = h.do("auditor", "GET", fmt.Sprintf("/v1/entries/%d/receipt?tree_size=%d", seq, cp.Size), nil)
	if c, _ := checkReceipt(t, h, got.Body, seq); c.Size != cp.Size {
		t.Errorf("tree_size=%d gave a checkpoint of size %d", cp.Size, c.Size)
	}
	for _, tc := range []struct {
		as, path string
		status   int
		code     string
	}{
		{"auditor_m1", fmt.Sprintf("/v1/entries/%d/receipt", seq), 200, ""},
		{"auditor", fmt.Sprintf("/v1/entries/%d/receipt?tree_size=0", seq), 400, "invalid_range"},
		{"auditor", fmt.Sprintf("/v1/entries/%d/receipt?tree_size=999999", seq), 404, "not_found"},
		{"auditor", fmt.Sprintf("/v1/entries/%d/receipt?tree_size=x", seq), 400, "invalid_parameter"},
		{"auditor", fmt.Sprintf("/v1/entries/%d/receipt?witnessed=1", seq), 404, "not_witnessed"},
		{"auditor", "/v1/entries/0/receipt", 200, ""},
		{"auditor_m1", "/v1/entries/0/receipt", 404, "not_found"}, // an admin entry needs scope *
		{"auditor", "/v1/entries/99999/receipt", 404, "not_found"},
		{"finance", fmt.Sprintf("/v1/entries/%d/receipt", seq), 403, "forbidden"},
		{"", fmt.Sprintf("/v1/entries/%d/receipt", seq), 401, "unauthenticated"},
	} {
		got := h.do(tc.as, "GET", tc.path, nil)
		if got.Status != tc.status || tc.code != "" && got.errorCode(t) != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.as, tc.path, got.Status, got.Body, tc.status, tc.code)
		}
	}
}

// TestReceiptNotYetCheckpointed: before a checkpoint covers an entry its
// receipt answers 409 not_yet_checkpointed with Retry-After.
func TestReceiptNotYetCheckpointed(t *testing.T) {
	h := newHarness(t)
	// Read the receipt of an entry right after its append, before the
	// next checkpoint (signed every 20 ms here): retried until the
	// receipt request wins that race.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.postStandard(fmt.Sprintf("msg_r2_%d", time.Now().UnixNano()), genericEvent(t, nil))
		seq := uint64(r.json(t)["seq"].(float64))
		got := h.do("auditor", "GET", fmt.Sprintf("/v1/entries/%d/receipt", seq), nil)
		if got.Status == 409 {
			if got.errorCode(t) != "not_yet_checkpointed" || got.Header.Get("Retry-After") == "" {
				t.Fatalf("409 %s, Retry-After %q", got.Body, got.Header.Get("Retry-After"))
			}
			return
		}
		if got.Status != 200 {
			t.Fatalf("receipt: %d %s", got.Status, got.Body)
		}
		if time.Now().After(deadline) {
			t.Skip("every receipt was already checkpointed: the race was never won")
		}
	}
}

// TestTransactionReceipts: a receipt per entry of the transaction, all
// against one checkpoint, in scope only, recorded.
func TestTransactionReceipts(t *testing.T) {
	h := newHarness(t)
	var seqs []uint64
	for i, typ := range []string{"payment.authorized", "payment.captured"} {
		r := h.postStandard(fmt.Sprintf("msg_tx%d", i), genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_tx%d", i), "type": typ}))
		seqs = append(seqs, uint64(r.json(t)["seq"].(float64)))
	}
	waitCovered(t, h, seqs[1])
	got := h.do("auditor_m1", "GET", "/v1/transactions/pay_0001/receipts", nil)
	if got.Status != 200 {
		t.Fatalf("%d %s", got.Status, got.Body)
	}
	var body struct {
		TransactionID string `json:"transaction_id"`
		Receipts      []struct {
			Seq     uint64 `json:"seq"`
			Receipt string `json:"receipt"`
		} `json:"receipts"`
	}
	if err := json.Unmarshal(got.Body, &body); err != nil || body.TransactionID != "pay_0001" || len(body.Receipts) != 2 {
		t.Fatalf("%v %s", err, got.Body)
	}
	var size uint64
	for i, r := range body.Receipts {
		if r.Seq != seqs[i] {
			t.Errorf("receipt %d is of seq %d, want %d", i, r.Seq, seqs[i])
		}
		cp, _ := checkReceipt(t, h, []byte(r.Receipt), r.Seq)
		if i > 0 && cp.Size != size {
			t.Error("the receipts are against different checkpoints")
		}
		size = cp.Size
	}
	if n := accessCount(t, h, "transaction.receipts"); n != 1 {
		t.Errorf("%d transaction.receipts access entries, want 1", n)
	}
	other := h.postStandard("msg_tx_other", genericEvent(t, map[string]any{"id": "evt_tx_other", "transaction_id": "pay_other", "merchant_id": "m_other"}))
	waitCovered(t, h, uint64(other.json(t)["seq"].(float64)))
	for _, tc := range []struct {
		as, id string
		status int
	}{
		{"auditor_m1", "pay_other", 404},
		{"auditor", "pay_other", 200},
		{"auditor", "pay_missing", 404},
		{"finance", "pay_0001", 403},
	} {
		if got := h.do(tc.as, "GET", "/v1/transactions/"+tc.id+"/receipts", nil); got.Status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.as, tc.id, got.Status, tc.status)
		}
	}
}

// TestWitnessedCheckpoint: with witnesses configured, the served
// checkpoint and receipts carry their cosignatures; ?witnessed=1 is the
// newest one a quorum cosigned; a witness going down leaves the server
// ready, ingesting and lagging visibly.
func TestWitnessedCheckpoint(t *testing.T) {
	a, b := newCosigningWitness(t, "witness.example/a"), newCosigningWitness(t, "witness.example/b")
	h := newHarnessSet(t, func(h *harness) {
		h.witnesses = []witness.Endpoint{a.endpoint("a"), b.endpoint("b")}
		h.witnessQuorum = 2
		h.witnessTiming = testWitnessTiming
	})
	r := h.postStandard("msg_w1", genericEvent(t, map[string]any{"id": "evt_w1"}))
	seq := uint64(r.json(t)["seq"].(float64))
	deadline := time.Now().Add(10 * time.Second)
	var cp []byte
	for {
		got := h.do("auditor", "GET", "/v1/ledger/checkpoint?witnessed=1", nil)
		if got.Status == 200 {
			var c log.Checkpoint
			text, _, _ := bytes.Cut(got.Body, []byte("\n\n"))
			c.Unmarshal(append(text, '\n'))
			if c.Size > seq {
				cp = got.Body
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no witnessed checkpoint covers %d: %d %s", seq, got.Status, got.Body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !h.srv.witnesses.Satisfied(cp) {
		t.Errorf("the witnessed checkpoint does not satisfy formats' quorum policy:\n%s", cp)
	}
	got := h.do("auditor", "GET", fmt.Sprintf("/v1/entries/%d/receipt?witnessed=1", seq), nil)
	if _, n := checkReceipt(t, h, got.Body, seq, a.vkey, b.vkey); n != 2 {
		t.Errorf("the witnessed receipt carries %d valid cosignatures, want 2", n)
	}

	// b goes down: ingestion goes on, /readyz stays ready and shows a lag.
	b.down.Store(true)
	for i := range 20 {
		if r := h.postStandard(fmt.Sprintf("msg_w_down_%d", i), genericEvent(t, map[string]any{"id": fmt.Sprintf("evt_w_down_%d", i)})); r.Status != 200 {
			t.Fatalf("ingest with a witness down: %d %s", r.Status, r.Body)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		rz := h.do("", "GET", "/readyz", nil)
		if rz.Status != 200 {
			t.Fatalf("readyz with a witness down: %d %s", rz.Status, rz.Body)
		}
		if lag, _ := rz.json(t)["witnessed_lag"].(float64); lag > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no witnessed_lag with a witness down: %s", rz.Body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := string(h.do("", "GET", "/metrics", nil).Body)
	for _, want := range []string{`paytrail_witness_cosigned_size{witness="a"}`, `paytrail_witness_failures_total{kind="http_status",witness="b"}`, "paytrail_witnessed_lag "} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
