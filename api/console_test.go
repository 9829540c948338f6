package api

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/witness"
)

// consoleClient is a browser stand-in for the console: a cookie jar, no
// redirects followed unless asked, and the CSRF token of the last page.
type consoleClient struct {
	t    testing.TB
	h    *harness
	http *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newConsoleClient(t testing.TB, h *harness) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, h: h, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (cc *consoleClient) do(req *http.Request) response {
	cc.t.Helper()
	resp, err := cc.http.Do(req)
	if err != nil {
		cc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		cc.csrf = string(m[1])
	}
	return response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}

func (cc *consoleClient) get(path string) response {
	cc.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, cc.h.http.URL+path, nil)
	return cc.do(req)
}

// post posts a form; the CSRF token of the last page is added unless
// form sets "csrf".
func (cc *consoleClient) post(path string, form url.Values) response {
	cc.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", cc.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, cc.h.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return cc.do(req)
}

// signIn signs in with the token of harness principal name.
func (cc *consoleClient) signIn(name string) {
	cc.t.Helper()
	if r := cc.get("/console/sign-in"); r.Status != http.StatusOK {
		cc.t.Fatalf("sign-in page: %d %s", r.Status, r.Body)
	}
	r := cc.post("/console/sign-in", url.Values{"token": {cc.h.tokens[name]}})
	if r.Status != http.StatusSeeOther {
		cc.t.Fatalf("sign in as %s: %d %s", name, r.Status, r.Body)
	}
	cc.get("/console/ledger") // a page of the session, for its CSRF token
}

// upload posts a settlement report through the console's form.
func (cc *consoleClient) upload(format, csv string) response {
	cc.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("csrf", cc.csrf)
	mw.WriteField("format", format)
	fw, _ := mw.CreateFormFile("report", "report.csv")
	fw.Write([]byte(csv))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, cc.h.http.URL+"/console/reconciliations", &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return cc.do(req)
}

// TestConsolePagesSmoke opens every page as the roles that use it, on a
// ledger with a few transactions.
func TestConsolePagesSmoke(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	for _, tc := range []struct {
		as    string
		paths []string
	}{
		{"auditor", []string{"/console/transactions", "/console/transactions/pay_a1", "/console/transactions/pay_a1/disclose", "/console/access-log", "/console/ledger", "/console/reconciliations"}},
		{"finance", []string{"/console/transactions?status=captured&from=2026-11-01", "/console/reconciliations"}},
		{"privacy", []string{"/console/subject-requests", "/console/ledger"}},
		{"admin", []string{"/console/principals", "/console/access-log"}},
	} {
		cc := newConsoleClient(t, h)
		cc.signIn(tc.as)
		for _, p := range tc.paths {
			r := cc.get(p)
			if r.Status != http.StatusOK {
				t.Errorf("%s GET %s: %d\n%s", tc.as, p, r.Status, r.Body)
			}
		}
	}
	h.assertNoCardholderData()
}

// seedConsole posts transactions of two merchants: pay_a1, pay_a2 of
// m_bookshop and pay_b1 of m_cafe, all with the test card.
func seedConsole(t testing.TB, h *harness) {
	t.Helper()
	for i, ev := range []map[string]any{
		{"transaction_id": "pay_a1", "merchant_id": "m_bookshop", "amount": 4550, "currency": "USD"},
		{"transaction_id": "pay_a2", "merchant_id": "m_bookshop", "amount": 123456, "currency": "USD", "occurred_at": "2026-11-21T10:00:00Z"},
		{"transaction_id": "pay_b1", "merchant_id": "m_cafe", "amount": 1500, "currency": "JPY", "occurred_at": "2026-11-22T10:00:00Z"},
	} {
		ev["id"] = fmt.Sprintf("evt_seed_%d", i)
		if r := h.postStandard(fmt.Sprintf("msg_seed_%d", i), genericEvent(t, ev)); r.Status != http.StatusOK {
			t.Fatalf("seed %d: %d %s", i, r.Status, r.Body)
		}
	}
}

// TestConsoleHeadersAndCookies: the strict CSP and no-store on every
// page, and the session cookie's flags.
func TestConsoleHeadersAndCookies(t *testing.T) {
	h := newHarness(t)
	cc := newConsoleClient(t, h)
	r := cc.get("/console/sign-in")
	for k, want := range map[string]string{
		"Content-Security-Policy": consoleCSP,
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(consoleCSP, "script-src 'self'") || strings.Contains(consoleCSP, "unsafe-inline") {
		t.Errorf("CSP allows inline script: %s", consoleCSP)
	}
	if bytes.Contains(r.Body, []byte("<script>")) || bytes.Contains(r.Body, []byte(" style=")) || bytes.Contains(r.Body, []byte("<style")) {
		t.Errorf("the page has inline script or style")
	}
	req, _ := http.NewRequest(http.MethodPost, h.http.URL+"/console/sign-in",
		strings.NewReader(url.Values{"csrf": {cc.csrf}, "token": {h.tokens["auditor"]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := cc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatalf("no session cookie: %d %v", resp.StatusCode, resp.Header)
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console/" {
		t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path=/console/", session)
	}
	if session.Secure {
		t.Errorf("session cookie is Secure on plain HTTP without secure_cookies")
	}
	if strings.Contains(session.Value, h.tokens["auditor"]) {
		t.Errorf("the cookie carries the token")
	}
}

// TestConsoleSecureCookieUnderTLS: under TLS the cookie is Secure.
func TestConsoleSecureCookieUnderTLS(t *testing.T) {
	h := newHarness(t)
	h.http.Close()
	h.http = httptest.NewTLSServer(h.srv.Handler())
	cc := newConsoleClient(t, h)
	cc.http.Transport = h.http.Client().Transport
	r := cc.get("/console/sign-in")
	found := false
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == preCookie {
			found = true
			if !ck.Secure || !ck.HttpOnly {
				t.Errorf("cookie under TLS = %+v, want Secure and HttpOnly", ck)
			}
		}
	}
	if !found {
		t.Fatal("no sign-in cookie")
	}
	cc.signIn("auditor")
	u, _ := url.Parse(h.http.URL + "/console/")
	for _, ck := range cc.http.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return
		}
	}
	t.Fatal("no session over TLS")
}

// TestConsoleCSRF: a form without the session's CSRF token, or from
// another origin, is refused and does nothing.
func TestConsoleCSRF(t *testing.T) {
	h := newHarness(t)
	cc := newConsoleClient(t, h)
	cc.signIn("admin")
	before := h.node.Ledger.Size()
	for _, form := range []url.Values{
		{"csrf": {""}, "name": {"x"}, "role": {"auditor"}, "merchants": {"*"}},
		{"csrf": {"forged"}, "name": {"x"}, "role": {"auditor"}, "merchants": {"*"}},
	} {
		if r := cc.post("/console/principals", form); r.Status != http.StatusForbidden || !bytes.Contains(r.Body, []byte("csrf")) {
			t.Errorf("forged form: %d %s", r.Status, r.Body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, h.http.URL+"/console/principals",
		strings.NewReader(url.Values{"csrf": {cc.csrf}, "name": {"x"}, "role": {"auditor"}, "merchants": {"*"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if r := cc.do(req); r.Status != http.StatusForbidden {
		t.Errorf("cross-origin form: %d", r.Status)
	}
	if h.node.Ledger.Size() != before {
		t.Errorf("a refused form appended %d entries", h.node.Ledger.Size()-before)
	}
	// The sign-in form has its own token.
	other := newConsoleClient(t, h)
	other.get("/console/sign-in")
	if r := other.post("/console/sign-in", url.Values{"csrf": {"nope"}, "token": {h.tokens["admin"]}}); r.Status != http.StatusForbidden {
		t.Errorf("sign-in with a forged token: %d", r.Status)
	}
	// With the right token the same form works.
	if r := cc.post("/console/principals", url.Values{"name": {"x"}, "role": {"auditor"}, "merchants": {"*"}}); r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte("ptk_")) {
		t.Errorf("genuine form: %d", r.Status)
	}
}

// TestConsoleScopeAndAccessLog: a finance clerk of m_bookshop never sees
// m_cafe's ids, and each console read is the access entry the API read
// writes: same action, resource and merchants, naming the clerk.
func TestConsoleScopeAndAccessLog(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	cc := newConsoleClient(t, h)
	cc.signIn("finance_m1")
	list := cc.get("/console/transactions")
	if !bytes.Contains(list.Body, []byte("pay_a1")) || bytes.Contains(list.Body, []byte("pay_b1")) || bytes.Contains(list.Body, []byte("m_cafe")) {
		t.Errorf("scoped list shows other merchants' ids or misses its own:\n%s", list.Body)
	}
	if r := cc.get("/console/transactions/pay_b1"); r.Status != http.StatusNotFound {
		t.Errorf("other merchant's transaction: %d", r.Status)
	}
	search := cc.post("/console/cards/search", url.Values{"pan": {testPAN}})
	if search.Status != http.StatusOK || !bytes.Contains(search.Body, []byte("pay_a2")) || bytes.Contains(search.Body, []byte("pay_b1")) {
		t.Errorf("card search: %d\n%s", search.Status, search.Body)
	}
	if bytes.Contains(search.Body, []byte(testPAN)) {
		t.Errorf("the card search page echoes the card number")
	}
	api := h.do("finance_m1", "GET", "/v1/transactions", nil)
	if api.Status != http.StatusOK {
		t.Fatal(api.Status)
	}

	log := h.do("auditor", "GET", "/v1/access-log?actor="+h.ids["finance_m1"], nil).json(t)
	var reads []map[string]any
	for _, it := range log["items"].([]any) {
		m := it.(map[string]any)
		if m["action"] == "transactions.list" {
			reads = append(reads, m)
		}
		if s := fmt.Sprint(m); strings.Contains(s, "m_cafe") || strings.Contains(s, "pay_b1") && m["action"] != "transaction.read" {
			t.Errorf("an access entry of the scoped clerk names m_cafe's data: %v", m)
		}
	}
	if len(reads) != 2 {
		t.Fatalf("transactions.list entries = %d, want 2 (console and API)", len(reads))
	}
	for _, k := range []string{"actor_id", "actor_name", "role", "action", "resource", "merchants", "result", "status", "origin_ip"} {
		if fmt.Sprint(reads[0][k]) != fmt.Sprint(reads[1][k]) {
			t.Errorf("console and API entries differ in %s: %v vs %v", k, reads[0][k], reads[1][k])
		}
	}
	actions := fmt.Sprint(log["items"])
	for _, a := range []string{"console.sign_in", "transaction.read", "cards.search"} {
		if !strings.Contains(actions, a) {
			t.Errorf("no %s entry for the console session", a)
		}
	}
	h.assertNoCardholderData()
}

// TestConsoleSessionEnds: sign-out revokes the session server-side (the
// old cookie no longer works), and revoking the token ends its sessions.
func TestConsoleSessionEnds(t *testing.T) {
	h := newHarness(t)
	cc := newConsoleClient(t, h)
	cc.signIn("auditor")
	u, _ := url.Parse(h.http.URL + "/console/")
	saved := cc.http.Jar.Cookies(u)
	if r := cc.post("/console/sign-out", url.Values{}); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", r.Status)
	}
	cc.http.Jar.SetCookies(u, saved) // a stolen copy of the cookie
	if r := cc.get("/console/ledger"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/sign-in" {
		t.Errorf("after sign-out the old cookie still works: %d", r.Status)
	}

	cc = newConsoleClient(t, h)
	cc.signIn("finance")
	if r := h.do("admin", "DELETE", "/v1/principals/"+h.ids["finance"], nil); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	if r := cc.get("/console/transactions"); r.Status != http.StatusSeeOther {
		t.Errorf("a revoked token's session still works: %d", r.Status)
	}
}

// TestConsoleSessionExpiry: idle and absolute expiry.
func TestConsoleSessionExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	st := newSessionStore(30*time.Minute, 2*time.Hour, 10, func() time.Time { return now })
	v, err := st.create("h", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ { // used every 29 minutes: alive until 2h
		now = now.Add(29 * time.Minute)
		if _, ok := st.get(v); ok != (i < 4) {
			t.Errorf("after %d uses: live = %v", i+1, ok)
		}
	}
	v, _ = st.create("h", nil, time.Time{})
	now = now.Add(31 * time.Minute)
	if _, ok := st.get(v); ok {
		t.Error("a session idle for 31m is live")
	}
}

// TestConsoleErasureNeedsConfirmation: erase shows a confirmation first
// and acts only once it is confirmed; the identifiers never reach the page.
func TestConsoleErasureNeedsConfirmation(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	cc := newConsoleClient(t, h)
	cc.signIn("privacy")
	before := h.node.Ledger.Size()
	r := cc.post("/console/subject-requests", url.Values{"kind": {"erase"}, "email": {testEmail}, "reference": {"T-1"}})
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte("Erase permanently")) {
		t.Fatalf("erase step 1: %d\n%s", r.Status, r.Body)
	}
	if bytes.Contains(r.Body, []byte(testEmail)) {
		t.Error("the confirmation page shows the email")
	}
	if h.node.Ledger.Size() != before {
		t.Error("the erasure acted before confirmation")
	}
	pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindSubmatch(r.Body)
	r = cc.post("/console/subject-requests/confirm", url.Values{"pending": {string(pending[1])}})
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte("acted on 3 transactions")) {
		t.Fatalf("erase confirmed: %d\n%s", r.Status, r.Body)
	}
	if r := cc.post("/console/subject-requests/confirm", url.Values{"pending": {string(pending[1])}}); r.Status != http.StatusBadRequest {
		t.Errorf("a confirmation replayed: %d", r.Status)
	}
	h.assertNoCardholderData()
}

// TestConsoleReconciliation: upload, the run page, the CSV, past runs.
func TestConsoleReconciliation(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	cc := newConsoleClient(t, h)
	cc.signIn("finance_m1")
	r := cc.upload("generic", "transaction_id,merchant_id,type,amount,currency,settled_at\n"+
		"pay_a1,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\npay_a2,m_bookshop,charge,1.00,USD,2026-11-22T00:00:00Z\n")
	loc := r.Header.Get("Location")
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/reconciliations/") {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	run := cc.get(loc)
	if run.Status != http.StatusOK || !bytes.Contains(run.Body, []byte("Amount mismatch")) {
		t.Errorf("run page: %d", run.Status)
	}
	csv := cc.get(loc + "/exceptions.csv")
	if csv.Status != http.StatusOK || !strings.HasPrefix(csv.Header.Get("Content-Type"), "text/csv") || !bytes.Contains(csv.Body, []byte("pay_a2")) {
		t.Errorf("csv: %d %s", csv.Status, csv.Body)
	}
	list := cc.get("/console/reconciliations")
	if !bytes.Contains(list.Body, []byte(strings.TrimPrefix(loc, "/console/reconciliations/"))) {
		t.Errorf("past runs do not list the run")
	}
	// Without the CSRF token the upload is refused before the report is read.
	cc.csrf = "forged"
	if r := cc.upload("generic", "transaction_id\n"); r.Status != http.StatusForbidden {
		t.Errorf("forged upload: %d", r.Status)
	}
}

// TestConsoleDisclosure: purpose per role, justification required, the
// result in the POST's answer only.
func TestConsoleDisclosure(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	cc := newConsoleClient(t, h)
	cc.signIn("auditor")
	form := cc.get("/console/transactions/pay_a1/disclose")
	if !bytes.Contains(form.Body, []byte(purposeFraud)) || bytes.Contains(form.Body, []byte(purposeCardholder)) {
		t.Errorf("auditor's purposes wrong")
	}
	if r := cc.post("/console/transactions/pay_a1/disclose", url.Values{"purpose": {purposeFraud}, "justification": {" "}}); r.Status != http.StatusBadRequest {
		t.Errorf("no justification: %d", r.Status)
	}
	r := cc.post("/console/transactions/pay_a1/disclose", url.Values{"purpose": {purposeFraud}, "justification": {"case F-9"}})
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(testName)) || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("disclosure: %d %q", r.Status, r.Header.Get("Cache-Control"))
	}
	if bytes.Contains([]byte(r.Header.Get("Location")), []byte("pay_a1")) {
		t.Error("disclosure redirected")
	}
}

// TestConsoleRoutesDocumented: every console route is listed in
// docs/console.md (they are left out of docs/openapi.yaml on purpose).
func TestConsoleRoutesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "console.md"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	n := 0
	for _, r := range h.srv.Routes() {
		method, path, _ := strings.Cut(r, " ")
		if !strings.HasPrefix(path, consolePrefix) {
			continue
		}
		n++
		if want := "`" + method + " " + openAPIPath(path) + "`"; !bytes.Contains(doc, []byte(want)) {
			t.Errorf("docs/console.md does not list %s", want)
		}
	}
	if n == 0 {
		t.Fatal("no console routes")
	}
}

// TestConsoleConcurrentRequests: one session used by many requests at
// once (tabs), with erasure confirmations kept and taken meanwhile; run
// under -race by CI.
func TestConsoleConcurrentRequests(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	cc := newConsoleClient(t, h)
	cc.signIn("privacy")
	csrf := cc.csrf
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, h.http.URL+"/console/subject-requests",
				strings.NewReader(url.Values{"csrf": {csrf}, "kind": {"erase"}, "email": {testEmail}, "reference": {fmt.Sprint("R-", i)}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := cc.http.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Sprint(resp.StatusCode)
			}
			if r, err := cc.http.Get(h.http.URL + "/console/ledger"); err != nil || r.StatusCode != http.StatusOK {
				errs <- fmt.Sprint("ledger ", err)
			} else {
				r.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestConsoleIssuerDown: with the identity provider unreachable, SSO
// sign-in says so (503) and paytrail tokens keep working on the API.
func TestConsoleIssuerDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	o, err := auth.NewOIDC(auth.OIDCConfig{Issuer: dead.URL, ClientID: "console",
		Roles: []auth.RoleMapping{{Group: "a", Role: auth.RoleAuditor, Merchants: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newConfiguredHarness(t, func(c *Config) { c.OIDC = o })
	cc := newConsoleClient(t, h)
	if r := cc.get("/console/sign-in"); !bytes.Contains(r.Body, []byte("/console/oidc/login")) {
		t.Fatalf("sign-in page has no SSO button")
	}
	if r := cc.get("/console/oidc/login"); r.Status != http.StatusServiceUnavailable || !bytes.Contains(r.Body, []byte("cannot be reached")) {
		t.Errorf("SSO with the issuer down: %d", r.Status)
	}
	if r := h.do("auditor", "GET", "/v1/transactions", nil); r.Status != http.StatusOK {
		t.Errorf("paytrail token with the issuer down: %d", r.Status)
	}
}

// TestConsoleLedgerWitnessesAndReceipts: with witnesses configured the
// ledger page lists them, their quorum and the witnessed size, and gives
// the verify command with their keys; an auditor downloads an entry's
// receipt from the console, which is the API's receipt.
func TestConsoleLedgerWitnessesAndReceipts(t *testing.T) {
	a, b := newCosigningWitness(t, "witness.example/a"), newCosigningWitness(t, "witness.example/b")
	h := newHarnessSet(t, func(h *harness) {
		h.witnesses = []witness.Endpoint{a.endpoint("a"), b.endpoint("b")}
		h.witnessQuorum = 2
		h.witnessTiming = testWitnessTiming
	})
	r := h.postStandard("msg_cw1", genericEvent(t, map[string]any{"id": "evt_cw1"}))
	seq := uint64(r.json(t)["seq"].(float64))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if size, ok := h.srv.witnessedSize(); ok && size > seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no witnessed checkpoint")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cc := newConsoleClient(t, h)
	cc.signIn("auditor")
	page := cc.get("/console/ledger")
	if page.Status != 200 {
		t.Fatalf("ledger page: %d", page.Status)
	}
	body := html.UnescapeString(string(page.Body))
	for _, want := range []string{"2, quorum 2", "up to entry", a.endpoint("a").Key, "--witness '" + b.endpoint("b").Key, "--quorum 2"} {
		if !strings.Contains(body, want) {
			t.Errorf("ledger page lacks %q", want)
		}
	}
	got := cc.get(fmt.Sprintf("/console/entries/%d/receipt", seq))
	if got.Status != 200 || !bytes.HasPrefix(got.Body, []byte("c2sp.org/tlog-proof@v1\n")) {
		t.Fatalf("receipt download: %d %.80q", got.Status, got.Body)
	}
	if cd := got.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
		t.Errorf("receipt download Content-Disposition %q", cd)
	}
	checkReceipt(t, h, got.Body, seq)
}
