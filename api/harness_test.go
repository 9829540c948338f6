package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v85/webhook"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/witness"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// Test secrets of the two webhook sources every harness configures.
const (
	testStandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testStripeSecret   = "whsec_test_stripe_endpoint_secret_0123456789"
)

// harness is a real server: real Pebble ledger and key store in a temp data
// dir, real Tink keys, a real HTTP server. Logs are captured so tests can
// scan them for cardholder data.
type harness struct {
	t      testing.TB
	dir    string
	node   *datadir.Node
	srv    *Server
	http   *httptest.Server
	logs   *syncBuffer
	tokens map[string]string // principal name -> bearer token
	ids    map[string]string // principal name -> id
	// witnesses, witnessQuorum and witnessTiming configure the server's
	// witness submitter (newWitnessedHarness).
	witnesses     []witness.Endpoint
	witnessQuorum int
	witnessTiming witness.Timing
	// configure, if set, adjusts the server's config before each start.
	configure func(*Config)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHarness starts a server with sources "dev" (standard) and "stripe"
// (stripe, default merchant acct_default) and these principals:
//
//	auditor      auditor  *
//	auditor_m1   auditor  m_bookshop
//	finance      finance  *
//	finance_m1   finance  m_bookshop
//	privacy      privacy  *
//	admin        admin    *
func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessSet(t, func(*harness) {})
}

// newConfiguredHarness is newHarness with configure adjusting the server's
// config.
func newConfiguredHarness(t testing.TB, configure func(*Config)) *harness {
	t.Helper()
	return newHarnessSet(t, func(h *harness) { h.configure = configure })
}

// newHarnessSet is newHarness with set applied to the harness before
// the server starts.
func newHarnessSet(t testing.TB, set func(*harness)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), logs: &syncBuffer{}, tokens: map[string]string{}, ids: map[string]string{}}
	set(h)
	h.start()
	for _, p := range []struct {
		name      string
		role      auth.Role
		merchants string
	}{
		{"auditor", auth.RoleAuditor, "*"},
		{"auditor_m1", auth.RoleAuditor, "m_bookshop"},
		{"finance", auth.RoleFinance, "*"},
		{"finance_m1", auth.RoleFinance, "m_bookshop"},
		{"privacy", auth.RolePrivacy, "*"},
		{"admin", auth.RoleAdmin, "*"},
	} {
		pr, tok, err := h.srv.Principals().Create(context.Background(), auth.CLIActor, p.name, p.role, []string{p.merchants})
		if err != nil {
			t.Fatal(err)
		}
		h.tokens[p.name], h.ids[p.name] = tok, pr.ID
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	node, err := datadir.Open(context.Background(), datadir.Config{
		Dir: h.dir, Create: true, Logger: logger, CheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := Config{
		Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, Logger: logger,
		DataDir: node.Dir,
		Sources: []Source{
			{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}},
			{Name: "stripe", Scheme: "stripe", Secrets: []string{testStripeSecret}, DefaultMerchant: "acct_default",
				Merchants: []string{"acct_default", "acct_1SampleMerchant", "acct_main"}},
			// A source whose default merchant is the only one it may post for.
			{Name: "shop", Scheme: "standard", Secrets: []string{testStandardSecret}, DefaultMerchant: "m_bookshop"},
		},
		Witnesses: h.witnesses, WitnessQuorum: h.witnessQuorum, WitnessTiming: h.witnessTiming,
	}
	if h.configure != nil {
		h.configure(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.node, h.srv = node, srv
	h.http = httptest.NewServer(srv.Handler())
}

func (h *harness) stop() {
	if h.http != nil {
		h.http.Close()
		h.http = nil
	}
	if h.srv != nil {
		// Close stops the witness submitter and the re-wrap too.
		h.srv.Close(context.Background())
	}
	if h.node != nil {
		if err := h.node.Close(); err != nil {
			h.t.Error(err)
		}
		h.node = nil
	}
}

// restart closes and reopens the data dir, as a process restart would.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

type response struct {
	Status int
	Body   []byte
	Header http.Header
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

// errorCode returns the contract error code of an error response.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error body: %s", r.Body)
	}
	return fmt.Sprint(e["code"])
}

// do sends a request as principal `as` ("" for no token).
func (h *harness) do(as, method, path string, body any, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if as != "" {
		tok, ok := h.tokens[as]
		if !ok {
			tok = as // a raw token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}

// postStandard posts body to the "dev" source signed with the Standard
// Webhooks reference library.
func (h *harness) postStandard(msgID string, body []byte) response {
	h.t.Helper()
	return h.postStandardRaw(msgID, body, "application/json")
}

func (h *harness) postStandardRaw(msgID string, body []byte, ctype string) response {
	h.t.Helper()
	return h.postToSource("dev", msgID, body, ctype)
}

// postToSource posts body to a standard-scheme source (they all share
// the test secret).
func (h *harness) postToSource(source, msgID string, body []byte, ctype string) response {
	h.t.Helper()
	wh, err := standardwebhooks.NewWebhook(testStandardSecret)
	if err != nil {
		h.t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign(msgID, now, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do("", "POST", "/v1/webhooks/"+source, body, "Content-Type", ctype,
		"webhook-id", msgID, "webhook-timestamp", fmt.Sprint(now.Unix()), "webhook-signature", sig)
}

// postStripe posts body to the "stripe" source signed with stripe-go.
func (h *harness) postStripe(body []byte) response {
	h.t.Helper()
	sp := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: testStripeSecret})
	return h.do("", "POST", "/v1/webhooks/stripe", body, "Stripe-Signature", sp.Header)
}

// genericEvent returns a generic event JSON with the given overrides of
// top-level fields (nil deletes one).
func genericEvent(t testing.TB, overrides map[string]any) []byte {
	t.Helper()
	ev := map[string]any{
		"id":             "evt_" + fmt.Sprint(time.Now().UnixNano()),
		"type":           "payment.captured",
		"occurred_at":    "2026-11-20T14:03:11Z",
		"transaction_id": "pay_0001",
		"merchant_id":    "m_bookshop",
		"amount":         4550,
		"currency":       "USD",
		"card":           map[string]any{"number": testPAN, "exp_month": 11, "exp_year": 2029, "brand": "mastercard", "cvc": "321"},
		"cardholder":     map[string]any{"name": testName, "email": testEmail, "country": "PL"},
		"ip":             "198.51.100.23",
		"metadata":       map[string]any{"order": "B-77"},
	}
	for k, v := range overrides {
		if v == nil {
			delete(ev, k)
		} else {
			ev[k] = v
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Distinctive cardholder values that must never appear in clear on disk or
// in logs.
const (
	testPAN      = "5555555555554444"
	testPANSpace = "5555 5555 5555 4444"
	testCVC      = "321"
	testName     = "Tomasz Zdzislaw Example"
	testEmail    = "tomasz.zdzislaw.example@example.net"
)

// assertNoCardholderData scans every file in the data dir (WAL included)
// and the captured logs for the given clear values.
func (h *harness) assertNoCardholderData(values ...string) {
	h.t.Helper()
	if len(values) == 0 {
		values = []string{testPAN, testPANSpace, testName, testEmail}
	}
	err := filepath.Walk(h.dir, func(path string, info os.FileInfo, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil // an obsolete file Pebble deleted during the walk
		}
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				h.t.Errorf("%q found in clear in %s", v, strings.TrimPrefix(path, h.dir))
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	logs := h.logs.String()
	for _, v := range values {
		if strings.Contains(logs, v) {
			h.t.Errorf("%q found in the logs", v)
		}
	}
}
