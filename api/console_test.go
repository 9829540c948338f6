package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
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

var _ = context.Background
var _ = auth.RoleAdmin
