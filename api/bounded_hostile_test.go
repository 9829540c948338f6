package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// newHarnessWith is newHarness with the server's Config adjusted by
// mutate (limits made small or windows long, so that tests need no
// timing).
func newHarnessWith(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), logs: &syncBuffer{}, tokens: map[string]string{}, ids: map[string]string{}}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	node, err := datadir.Open(context.Background(), datadir.Config{
		Dir: h.dir, Create: true, Logger: logger, CheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Ledger: node.Ledger, Keys: node.Keys, DataKeys: node.DataKeys, KeyStore: node.KeyStore, Logger: logger,
		Sources: []Source{
			{Name: "dev", Scheme: "standard", Secrets: []string{testStandardSecret}},
			{Name: "stripe", Scheme: "stripe", Secrets: []string{testStripeSecret}, DefaultMerchant: "acct_default"},
		},
	}
	mutate(&cfg)
	srv, err := New(cfg)
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	h.node, h.srv = node, srv
	h.http = httptest.NewServer(srv.Handler())
	t.Cleanup(h.stop)
	for name, role := range map[string]auth.Role{"auditor": auth.RoleAuditor, "finance": auth.RoleFinance, "admin": auth.RoleAdmin} {
		pr, tok, err := srv.Principals().Create(context.Background(), auth.CLIActor, name, role, []string{"*"})
		if err != nil {
			t.Fatal(err)
		}
		h.tokens[name], h.ids[name] = tok, pr.ID
	}
	return h
}

// serve runs h's server with Serve on a loopback listener, as paytrail
// serve does, and returns its address and a stop function that cancels it
// and returns what Serve returned.
func serve(t *testing.T, h *harness) (addr string, stop func() error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.srv.Serve(ctx, l, 5*time.Second) }()
	stopped := false
	var serr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			serr = <-errc
		}
		return serr
	}
	t.Cleanup(func() { stop() })
	return l.Addr().String(), stop
}

// rawRequest opens a connection to addr and writes head (request line and
// headers, CRLF-terminated, without the blank line) and the first bytes of
// a body.
func rawRequest(t *testing.T, addr, head, body string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return c
}

// readResponse reads one response from c; the guard deadline only keeps a
// broken server from hanging the test.
func readResponse(t *testing.T, c net.Conn) (*http.Response, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return r, err
}

// waitFor polls cond, which a concurrent request makes true, up to a
// guard deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTricklingBodiesMeetTheBodyDeadline: a webhook body (or a JSON body)
// trickled a byte at a time is cut off at BodyReadTimeout with 408,
// instead of holding its connection and buffer for minutes, while a
// reconciliation upload of an authenticated caller gets the longer upload
// deadline.
func TestTricklingBodiesMeetTheBodyDeadline(t *testing.T) {
	const bodyTimeout = 500 * time.Millisecond
	h := newHarnessWith(t, func(c *Config) {
		c.BodyReadTimeout = bodyTimeout
		c.UploadReadTimeout = time.Minute
	})
	addr, _ := serve(t, h)
	for _, tc := range []struct{ name, head string }{
		{"webhook", "POST /v1/webhooks/dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"},
		{"webhook chunked", "POST /v1/webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"},
		{"disclose", "POST /v1/transactions/pay_1/disclose HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + h.tokens["auditor"] + "\r\nContent-Length: 1000\r\n"},
	} {
		body := "{"
		if strings.Contains(tc.head, "chunked") {
			body = "1\r\n{\r\n"
		}
		c := rawRequest(t, addr, tc.head, body)
		r, err := readResponse(t, c)
		if err != nil {
			t.Errorf("%s: no answer to a trickled body: %v", tc.name, err)
			continue
		}
		if r.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%s: %d, want 408", tc.name, r.StatusCode)
		}
	}
	// An upload that pauses longer than the body deadline, but within
	// the upload deadline, is read to its end.
	report := "transaction_id,merchant_id,type,amount,currency,settled_at\n"
	head := fmt.Sprintf("POST /v1/reconciliations?format=generic&default_merchant=m_bookshop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n", h.tokens["finance"], len(report))
	c := rawRequest(t, addr, head, report[:10])
	time.Sleep(3 * bodyTimeout) // past the body deadline
	if _, err := io.WriteString(c, report[10:]); err != nil {
		t.Fatalf("upload cut off at the body deadline: %v", err)
	}
	r, err := readResponse(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode == http.StatusRequestTimeout {
		t.Errorf("upload got the webhook body deadline: %d", r.StatusCode)
	}
}

// TestWebhookBufferIsBounded: the bytes of deliveries being received count
// against MaxWebhookBuffer before a byte is read; one that does not fit
// answers 503 with Retry-After, and fits again once the others are done.
func TestWebhookBufferIsBounded(t *testing.T) {
	const maxBody = 4096
	h := newHarnessWith(t, func(c *Config) {
		c.MaxBody = maxBody
		c.MaxWebhookBuffer = 2 * maxBody
		c.BodyReadTimeout = time.Minute
	})
	addr, _ := serve(t, h)
	head := "POST /v1/webhooks/dev HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(maxBody) + "\r\n"
	// Two deliveries trickling their bodies hold the whole budget.
	var held []net.Conn
	for i := range 2 {
		held = append(held, rawRequest(t, addr, head, "{"))
		waitFor(t, "a delivery's reservation", func() bool { return h.srv.webhookBuf.used.Load() == int64((i+1)*maxBody) })
	}
	// A third, even a small signed one, does not fit.
	body := genericEvent(t, nil)
	r := h.postStandardTo(addr, "msg_over_budget", body)
	if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "overloaded" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the webhook buffer: %d %s (Retry-After %q), want 503 overloaded with Retry-After", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if m := h.do("", "GET", "/metrics", nil); !strings.Contains(string(m.Body), `paytrail_rejected_total{reason="webhook_buffer"} 1`) {
		t.Errorf("rejection not counted:\n%s", grepLines(string(m.Body), "paytrail_rejected_total"))
	}
	// Once the held deliveries end, their bytes are released.
	for _, c := range held {
		c.Close()
	}
	waitFor(t, "the reservations' release", func() bool { return h.srv.webhookBuf.used.Load() == 0 })
	if r := h.postStandardTo(addr, "msg_over_budget", body); r.Status != http.StatusOK {
		t.Fatalf("after release: %d %s", r.Status, r.Body)
	}
	if _, err := New(Config{Ledger: h.node.Ledger, Keys: h.node.Keys, DataKeys: h.node.DataKeys, KeyStore: h.node.KeyStore,
		MaxBody: 2 << 20, MaxWebhookBuffer: 1 << 20}); err == nil {
		t.Error("New accepted a webhook buffer smaller than one body")
	}
}

// postStandardTo is postStandard to the server at addr.
func (h *harness) postStandardTo(addr, msgID string, body []byte) response {
	h.t.Helper()
	saved := h.http.URL
	h.http.URL = "http://" + addr
	defer func() { h.http.URL = saved }()
	return h.postStandard(msgID, body)
}

// TestUnauthenticatedConnectionsAreCapped: connections on which nothing
// has authenticated are capped; one beyond the cap is closed unanswered,
// and a connection that authenticates frees its place.
func TestUnauthenticatedConnectionsAreCapped(t *testing.T) {
	// Silent connections are kept well past the guard below, so a
	// connection over the cap is closed by the cap, not by this timeout.
	h := newHarnessWith(t, func(c *Config) {
		c.MaxUnauthenticatedConns = 2
		c.HeaderReadTimeout = 5 * time.Minute
	})
	addr, _ := serve(t, h)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two silent connections fill the cap.
	a, b := dial(), dial()
	waitFor(t, "two counted connections", func() bool { return h.srv.unauthConns.Load() == 2 })
	third := dial()
	third.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := third.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a connection over the cap was kept open (read %d, %v)", n, err)
	}
	// One of them authenticates: it no longer counts, and a new
	// connection is served.
	io.WriteString(a, "GET /v1/ledger/checkpoint HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+h.tokens["auditor"]+"\r\n\r\n")
	if r, err := readResponse(t, a); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("authenticated request: %v %v", r, err)
	}
	waitFor(t, "the authenticated connection to stop counting", func() bool { return h.srv.unauthConns.Load() == 1 })
	d := dial()
	io.WriteString(d, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if r, err := readResponse(t, d); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("a connection under the cap: %v %v", r, err)
	}
	b.Close()
	d.Close()
	waitFor(t, "closed connections to stop counting", func() bool { return h.srv.unauthConns.Load() == 0 })
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// coalescedRE finds the count in a coalesced entry's resource.
var coalescedRE = regexp.MustCompile(`\(first of (\d+) failed attempts coalesced, `)

// anonymousAttempts returns the access entries of unauthenticated callers
// and the attempts they stand for.
func anonymousAttempts(t *testing.T, h *harness) (entries, attempts int, coalesced []ledger.AccessBody) {
	t.Helper()
	var page *ledger.AccessPage
	// A page stops early at an entry applied but not yet synced (a window
	// being recorded right now); read again once it is.
	for try := 0; ; try++ {
		var err error
		page, err = h.node.Ledger.AccessEntries(context.Background(), ledger.AccessQuery{Limit: 500, ActorID: "anonymous"})
		if err != nil {
			t.Fatal(err)
		}
		if page.Next == nil {
			break
		}
		if try == 200 {
			t.Fatal("more than one page of access entries")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range page.Items {
		entries++
		if m := coalescedRE.FindStringSubmatch(r.Body.Resource); m != nil {
			n, _ := strconv.Atoi(m[1])
			attempts += n
			coalesced = append(coalesced, r.Body)
		} else {
			attempts++
		}
	}
	return entries, attempts, coalesced
}

// TestUnauthenticatedFloodIsCoalesced: a burst of N bad-token requests
// leaves far fewer than N access entries, whose counts add up to N; the
// counted attempts are recorded when the server stops, so none is lost.
func TestUnauthenticatedFloodIsCoalesced(t *testing.T) {
	const n, burst = 200, 4
	h := newHarnessWith(t, func(c *Config) {
		c.DenialWindow = time.Hour // only Close ends the window
		c.DenialBurst = burst
	})
	addr, stop := serve(t, h)
	client := &http.Client{}
	for i := range n {
		path := "/v1/transactions/tx" + strconv.Itoa(i)
		if i%2 == 1 {
			path = "/v1/transactions?card_token=" + strconv.Itoa(i)
		}
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer ptk_not-a-real-token-"+strconv.Itoa(i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d: %d, want 401", i, resp.StatusCode)
		}
	}
	// Two actions, each with its first burst recorded at once.
	if entries, _, _ := anonymousAttempts(t, h); entries != 2*burst {
		t.Fatalf("before the window ends: %d entries, want %d", entries, 2*burst)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	entries, attempts, coalesced := anonymousAttempts(t, h)
	if entries > n/10 {
		t.Errorf("%d requests made %d entries", n, entries)
	}
	if attempts != n {
		t.Errorf("entries count %d attempts, want %d", attempts, n)
	}
	if len(coalesced) != 2 {
		t.Fatalf("%d coalesced entries, want one per action", len(coalesced))
	}
	for _, b := range coalesced {
		if b.Result != "failure" || b.Status != http.StatusUnauthorized || b.OriginIP != "127.0.0.1" || b.ActorID != "anonymous" {
			t.Errorf("coalesced entry %+v", b)
		}
		if b.Action != "transaction.read" && b.Action != "transactions.list" {
			t.Errorf("coalesced entry action %q", b.Action)
		}
	}
	// After Close, attempts are recorded one entry each again.
	if !h.srv.denials.admit("127.0.0.1", "transaction.read", "GET /x", time.Now()) {
		t.Error("an attempt after Close was counted, not recorded")
	}
}

// TestCoalescedWindowsEndOnTheirOwn: a window's counted attempts are
// recorded when it ends, without waiting for Close.
func TestCoalescedWindowsEndOnTheirOwn(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) {
		c.DenialWindow = 50 * time.Millisecond
		c.DenialBurst = 1
	})
	for range 5 {
		if r := h.do("ptk_bad", "GET", "/v1/access-log", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("%d, want 401", r.Status)
		}
	}
	var attempts int
	waitFor(t, "the window's entry", func() bool {
		_, attempts, _ = anonymousAttempts(t, h)
		return attempts >= 5
	})
	if attempts != 5 {
		t.Errorf("entries count %d attempts, want 5", attempts)
	}
}
