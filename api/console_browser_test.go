package api

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/paytrail/paytrail/api/auth"
)

// Browser tests drive Debian's chromium (installed by .ci/run) through
// chromedp: one browser per test binary, started on first use, a fresh
// browser context (its own cookies) per test. Where no browser is
// installed they skip, saying so.

var updateScreenshots = flag.Bool("update-screenshots", false, "write screenshots of the console's main pages to docs/console/")

var browser struct {
	once   sync.Once
	ctx    context.Context // the browser's context
	cancel func()
	err    error
}

// browserTimeout bounds each browser test.
const browserTimeout = 45 * time.Second

func findChromium() string {
	for _, p := range []string{os.Getenv("PAYTRAIL_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}

// newTab returns a tab in a fresh browser context, and its cancel.
func newTab(t *testing.T) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("no chromium found (apt-get install -y chromium, or set PAYTRAIL_CHROMIUM): skipping the browser test")
	}
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "paytrail-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
			chromedp.UserDataDir(dir), chromedp.WindowSize(1280, 900))
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		if err := chromedp.Do(bctx); err != nil { // starts the browser
			browser.err = err
		}
		browser.ctx = bctx
		browser.cancel = func() { bcancel(); acancel(); os.RemoveAll(dir) }
	})
	if browser.err != nil {
		t.Fatalf("failed to start chromium: %v", browser.err)
	}
	tctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	tctx, tcancel := context.WithTimeout(tctx, browserTimeout)
	t.Cleanup(func() { tcancel(); cancel() })
	return tctx
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// screenshot saves the viewport as docs/console/<name>.png when
// -update-screenshots is given.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Re-encoded at the best compression: the docs carry these files.
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// browserSignIn signs in with a token through the sign-in form.
func browserSignIn(t *testing.T, ctx context.Context, h *harness, name string) {
	t.Helper()
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	screenshotOnce(t, ctx, "sign-in")
	run(t, ctx, chromedp.SendKeys(chromedp.ID("token"), h.tokens[name]), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(".who .name")))
}

var signInShot sync.Once

func screenshotOnce(t *testing.T, ctx context.Context, name string) {
	signInShot.Do(func() { screenshot(t, ctx, name) })
}

// TestBrowserAuditor: token sign-in, the transaction list with localized
// times and the stylesheet applied (so the CSP lets the console's own
// files in), a transaction, a disclosure, the access log naming these
// reads, and the ledger page.
func TestBrowserAuditor(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	ctx := newTab(t)
	browserSignIn(t, ctx, h, "auditor")
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("table.data")))
	if got := text(t, ctx, "table.data tbody"); !strings.Contains(got, "pay_a2") || !strings.Contains(got, "1,234.56 USD") || !strings.Contains(got, "1,500 JPY") {
		t.Errorf("transactions table: %q", got)
	}
	tm := text(t, ctx, "table.data tbody time")
	if strings.HasSuffix(tm, "UTC") {
		t.Errorf("time %q not localized: console.js did not run under the CSP", tm)
	}
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("header.top")).backgroundColor`))
	if err != nil || bg != "rgb(23, 34, 59)" {
		t.Errorf("header background %q (%v): console.css not applied", bg, err)
	}
	// The CSP blocks inline script, and the session cookie is HttpOnly.
	blocked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const s = document.createElement("script");
		s.textContent = "window.__inline = 1";
		document.body.appendChild(s);
		return window.__inline === undefined;
	})()`))
	if err != nil || !blocked {
		t.Errorf("an inline script ran (%v): the CSP does not block it", err)
	}
	if cookies, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); strings.Contains(cookies, sessionCookie) {
		t.Errorf("script can read the session cookie: %q", cookies)
	}
	screenshot(t, ctx, "transactions")

	run(t, ctx, chromedp.Click(chromedp.CSS(`a[href="/console/transactions/pay_a1"]`)), chromedp.WaitVisible(chromedp.ID("h-entries")))
	if got := text(t, ctx, "main"); !strings.Contains(got, "555555••••••4444") || !strings.Contains(got, "45.50 USD") {
		t.Errorf("transaction page: %q", got)
	}
	screenshot(t, ctx, "transaction")

	run(t, ctx, chromedp.Click(chromedp.CSS(`a[href$="/disclose"]`)), chromedp.WaitVisible(chromedp.ID("j")))
	run(t, ctx, chromedp.SendKeys(chromedp.ID("j"), "Case F-2291: chargeback fraud review"), chromedp.Submit(chromedp.ID("j")),
		chromedp.WaitVisible(chromedp.CSS(".alert.ok")))
	if got := text(t, ctx, "main"); !strings.Contains(got, testName) {
		t.Errorf("disclosure: %q", got)
	}
	screenshot(t, ctx, "disclosure")

	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/access-log"), chromedp.WaitVisible(chromedp.CSS("table.data")))
	got := text(t, ctx, "table.data")
	for _, a := range []string{"console.sign_in", "transactions.list", "transaction.read", "transaction.disclose", "Case F-2291"} {
		if !strings.Contains(got, a) {
			t.Errorf("access log page lacks %q", a)
		}
	}
	screenshot(t, ctx, "access-log")

	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/ledger"), chromedp.WaitVisible(chromedp.ID("h-verify")))
	if got := text(t, ctx, "main"); !strings.Contains(got, "paytrail verify --url") {
		t.Errorf("ledger page: %q", got)
	}
	screenshot(t, ctx, "ledger")

	// A phone-sized viewport still shows the navigation and the table.
	run(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(h.http.URL+"/console/transactions"), chromedp.WaitVisible(chromedp.CSS("table.data")))
	screenshot(t, ctx, "phone")
	h.assertNoCardholderData()
}

// TestBrowserFinance: a clerk of m_bookshop sees only its ids, finds a
// card by number through the POST form (the number never reaches a URL),
// and reconciles a report with the upload form.
func TestBrowserFinance(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	ctx := newTab(t)
	browserSignIn(t, ctx, h, "finance_m1")
	run(t, ctx, chromedp.WaitVisible(chromedp.CSS("table.data")))
	if got := text(t, ctx, "main"); strings.Contains(got, "pay_b1") || strings.Contains(got, "m_cafe") || !strings.Contains(got, "pay_a1") {
		t.Errorf("scoped list: %q", got)
	}
	run(t, ctx, chromedp.SendKeys(chromedp.ID("s-pan"), testPAN), chromedp.Submit(chromedp.ID("s-pan")), chromedp.WaitVisible(chromedp.CSS(".note")))
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if strings.Contains(loc, "5555") || strings.Contains(text(t, ctx, "main"), "pay_b1") {
		t.Errorf("card search: location %q", loc)
	}

	report := filepath.Join(t.TempDir(), "settlement.csv")
	os.WriteFile(report, []byte("transaction_id,merchant_id,type,amount,currency,settled_at\n"+
		"pay_a1,m_bookshop,charge,45.50,USD,2026-11-22T00:00:00Z\npay_a2,m_bookshop,charge,1234.00,USD,2026-11-22T00:00:00Z\n"+
		"pay_zz,m_bookshop,charge,9.99,USD,2026-11-22T00:00:00Z\n"), 0o600)
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/reconciliations"), chromedp.WaitVisible(chromedp.ID("report")))
	run(t, ctx, chromedp.SetUploadFiles(chromedp.ID("report"), []string{report}), chromedp.Submit(chromedp.ID("report")),
		chromedp.WaitVisible(chromedp.ID("h-ex")))
	if got := text(t, ctx, "main"); !strings.Contains(got, "Amount mismatch") || !strings.Contains(got, "pay_zz") {
		t.Errorf("run page: %q", got)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/console/reconciliations/") {
		t.Errorf("after the upload the address is %q", loc)
	}
	screenshot(t, ctx, "reconciliation")
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/reconciliations"), chromedp.WaitVisible(chromedp.ID("h-runs")))
	screenshot(t, ctx, "reconciliations")

	// CSRF: a form whose token was altered is refused.
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/transactions"), chromedp.WaitVisible(chromedp.ID("s-pan")),
		chromedp.SetAttributeValue(chromedp.CSS(`form.search input[name="csrf"]`), "value", "forged"),
		chromedp.SendKeys(chromedp.ID("s-fp"), "fp_x"), chromedp.Submit(chromedp.ID("s-fp")), chromedp.WaitVisible(chromedp.CSS(".alert.error")))
	if got := text(t, ctx, "h1"); got != "Form refused" {
		t.Errorf("forged form answered %q", got)
	}
}

// TestBrowserPrivacyAndAdmin: an erasure asks for confirmation; an admin
// creates a principal and sees its token once.
func TestBrowserPrivacyAndAdmin(t *testing.T) {
	h := newHarness(t)
	seedConsole(t, h)
	ctx := newTab(t)
	browserSignIn(t, ctx, h, "privacy")
	run(t, ctx, chromedp.WaitVisible(chromedp.ID("ref")),
		chromedp.Click(chromedp.CSS(`input[value="erase"]`)), chromedp.SendKeys(chromedp.ID("email"), testEmail),
		chromedp.SendKeys(chromedp.ID("ref"), "DSR-1042"), chromedp.Submit(chromedp.ID("ref")),
		chromedp.WaitVisible(chromedp.CSS("button.danger")))
	screenshot(t, ctx, "erase-confirm")
	run(t, ctx, chromedp.Click(chromedp.CSS("button.danger")), chromedp.WaitVisible(chromedp.CSS(".alert.ok")))
	if got := text(t, ctx, ".alert.ok"); !strings.Contains(got, "acted on 3 transactions") {
		t.Errorf("erasure: %q", got)
	}

	ctx = newTab(t)
	browserSignIn(t, ctx, h, "admin")
	run(t, ctx, chromedp.WaitVisible(chromedp.ID("n")), chromedp.SendKeys(chromedp.ID("n"), "Grace (auditor)"),
		chromedp.SendKeys(chromedp.ID("m"), "*"), chromedp.Submit(chromedp.ID("n")), chromedp.WaitVisible(chromedp.CSS("pre.token")))
	tok := text(t, ctx, "pre.token")
	if !strings.HasPrefix(tok, "ptk_") {
		t.Fatalf("token shown: %q", tok)
	}
	screenshot(t, ctx, "principals")
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/principals"), chromedp.WaitVisible(chromedp.ID("h-list")))
	if strings.Contains(text(t, ctx, "main"), tok) {
		t.Error("the token is shown again")
	}
}

// TestBrowserOIDC: sign-in through a real OIDC provider (mockoidc):
// authorization code with PKCE, state and nonce; the role and scope come
// from the groups; the access log names the person oidc:<sub>; a person
// whose groups map to no role is refused, and that is recorded.
func TestBrowserOIDC(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	m.CodeChallengeMethodsSupported = []string{"S256"}
	cfg := m.Config()
	o, err := auth.NewOIDC(auth.OIDCConfig{
		Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Scopes: []string{"openid", "email", "profile", "groups"},
		Roles: []auth.RoleMapping{
			{Group: "finance-bookshop", Role: auth.RoleFinance, Merchants: []string{"m_bookshop"}},
			{Group: "auditors", Role: auth.RoleAuditor, Merchants: []string{"*"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newConfiguredHarness(t, func(c *Config) { c.OIDC = o })
	seedConsole(t, h)

	m.QueueUser(&mockoidc.MockUser{Subject: "u-ada", Email: "ada@example.com", EmailVerified: true, Groups: []string{"finance-bookshop"}})
	ctx := newTab(t)
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/sign-in"), chromedp.WaitVisible(chromedp.CSS(`a[href="/console/oidc/login"]`)))
	screenshot(t, ctx, "sign-in-sso")
	run(t, ctx, chromedp.Click(chromedp.CSS(`a[href="/console/oidc/login"]`)), chromedp.WaitVisible(chromedp.CSS("table.data")))
	if got := text(t, ctx, ".who"); !strings.Contains(got, "ada@example.com") || !strings.Contains(got, "finance") {
		t.Errorf("signed in as %q", got)
	}
	if got := text(t, ctx, "main"); strings.Contains(got, "pay_b1") || !strings.Contains(got, "pay_a1") {
		t.Errorf("SSO clerk's list: %q", got)
	}

	m.QueueUser(&mockoidc.MockUser{Subject: "u-eve", Email: "eve@example.com", Groups: []string{"engineering"}})
	ctx = newTab(t)
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/oidc/login"), chromedp.WaitVisible(chromedp.CSS(".alert.error")))
	if got := text(t, ctx, ".alert.error"); !strings.Contains(got, "no_role") {
		t.Errorf("no-role sign-in: %q", got)
	}
	// A callback whose state was not issued to this browser is refused.
	run(t, ctx, chromedp.Navigate(h.http.URL+"/console/oidc/callback?code=x&state=forged"), chromedp.WaitVisible(chromedp.CSS(".alert.error")))
	if got := text(t, ctx, ".alert.error"); !strings.Contains(got, "invalid_state") {
		t.Errorf("forged callback: %q", got)
	}

	log := h.do("auditor", "GET", "/v1/access-log", nil).json(t)
	seen := map[string]string{}
	for _, it := range log["items"].([]any) {
		e := it.(map[string]any)
		if strings.HasPrefix(fmt.Sprint(e["actor_id"]), "oidc:") {
			seen[fmt.Sprint(e["actor_id"], " ", e["action"], " ", e["status"])] = fmt.Sprint(e["actor_name"])
		}
	}
	for k, name := range map[string]string{
		"oidc:u-ada console.sign_in 200":   "ada@example.com",
		"oidc:u-ada transactions.list 200": "ada@example.com",
		"oidc:u-eve console.sign_in 403":   "eve@example.com",
	} {
		if seen[k] != name {
			t.Errorf("access log: %q by %q, want by %q (have %v)", k, seen[k], name, seen)
		}
	}
	if r := h.do("", http.MethodGet, "/readyz", nil); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
}
