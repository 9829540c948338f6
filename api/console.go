package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/render"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/console"
)

// The web console (docs/console.md) is server-rendered HTML at /console/ on
// the API's listener. It has no logic of its own for reading or changing
// the ledger: each page calls the API handler of its route through the
// server's own router (callAPI), as the signed-in person, so that the
// console and the API share one authorization, one merchant scope, one set
// of purposes and one access log: a console read is the very access entry
// the API read writes, and a console action the same admin or request
// entry. What the console adds is sessions (console_session.go), CSRF
// tokens, strict headers, and HTML.

// ConsoleConfig configures the console's sessions.
type ConsoleConfig struct {
	// IdleTimeout ends a session not used for this long. The default
	// value is 30m.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in, used or not. The
	// default value is 12h.
	MaxAge time.Duration
	// MaxSessions caps the sessions held at once (they are in memory).
	// The default value is 10000.
	MaxSessions int
	// SecureCookies marks cookies Secure even on plain HTTP (behind a
	// TLS-terminating proxy). Under TLS they always are.
	SecureCookies bool
}

// consoleCSP allows only the console's own files: no inline script or
// style, no framing, forms posting only to the console itself.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type consoleState struct {
	sessions *sessionStore
	pages    map[string]*template.Template
	static   http.Handler
	oidc     *auth.OIDC
	// receipts is whether the API serves GET /v1/entries/{seq}/receipt
	// (looked up once all routes are registered); until it does, the
	// transaction page says receipts are not available.
	receiptsOnce sync.Once
	receipts     bool
}

// receiptsServed reports whether the API has the receipt route.
func (s *Server) receiptsServed() bool {
	s.console.receiptsOnce.Do(func() {
		for _, r := range s.engine.Routes() {
			if r.Method == http.MethodGet && r.Path == "/v1/entries/:seq/receipt" {
				s.console.receipts = true
			}
		}
	})
	return s.console.receipts
}

// consolePrincipal marks an internal request made by callAPI, carrying the
// signed-in principal. A context value cannot come from the network.
type consolePrincipal struct{}

// consoleAuth authenticates the console's internal API calls as the
// session's principal and leaves every other request to next.
type consoleAuth struct{ next auth.Authenticator }

func (a consoleAuth) Authenticate(ctx context.Context, r *http.Request) (*auth.Principal, error) {
	if p, ok := r.Context().Value(consolePrincipal{}).(*auth.Principal); ok && p != nil {
		return p, nil
	}
	return a.next.Authenticate(ctx, r)
}

// consoleRoutes registers the console under /console/.
func (s *Server) consoleRoutes(e *gin.Engine) {
	cc := s.cfg.Console
	if cc.IdleTimeout <= 0 {
		cc.IdleTimeout = 30 * time.Minute
	}
	if cc.MaxAge <= 0 {
		cc.MaxAge = 12 * time.Hour
	}
	if cc.MaxSessions <= 0 {
		cc.MaxSessions = 10000
	}
	s.cfg.Console = cc
	pages, err := console.Pages(consoleFuncs)
	if err != nil {
		panic("api: console templates do not parse: " + err.Error()) // embedded: a build defect
	}
	static, _ := fs.Sub(console.Static, "static")
	s.console = &consoleState{
		sessions: newSessionStore(cc.IdleTimeout, cc.MaxAge, cc.MaxSessions, s.cfg.Now),
		pages:    pages,
		static:   http.StripPrefix("/console/static/", http.FileServer(http.FS(static))),
		oidc:     s.cfg.OIDC,
	}
	s.auth = consoleAuth{next: s.auth}

	g := e.Group("/console", s.consoleHeaders)
	g.GET("/static/*filepath", s.consoleStatic)
	g.GET("/sign-in", s.consoleSignInPage)
	g.POST("/sign-in", s.consoleSignIn)
	g.GET("/oidc/login", s.consoleOIDCLogin)
	g.GET("/oidc/callback", s.consoleOIDCCallback)

	in := g.Group("", s.consoleSession)
	in.GET("/", s.consoleHome)
	in.POST("/sign-out", s.consoleSignOut)
	in.GET("/transactions", s.consoleTransactions)
	in.POST("/cards/search", s.consoleCardSearch)
	in.GET("/transactions/:id", s.consoleTransaction)
	in.GET("/transactions/:id/disclose", s.consoleDiscloseForm)
	in.POST("/transactions/:id/disclose", s.consoleDisclose)
	in.GET("/entries/:seq/receipt", s.consoleReceipt)
	in.GET("/access-log", s.consoleAccessLog)
	in.GET("/ledger", s.consoleLedger)
	in.GET("/reconciliations", s.consoleReconciliations)
	in.POST("/reconciliations", s.consoleUpload)
	in.GET("/reconciliations/:id", s.consoleReconciliation)
	in.GET("/reconciliations/:id/exceptions.csv", s.consoleExceptionsCSV)
	in.GET("/subject-requests", s.consoleSubjectForm)
	in.POST("/subject-requests", s.consoleSubjectRequest)
	in.POST("/subject-requests/confirm", s.consoleSubjectConfirm)
	in.GET("/principals", s.consolePrincipals)
	in.POST("/principals", s.consoleCreatePrincipal)
	in.POST("/principals/:id/revoke", s.consoleRevokePrincipal)
}

// consoleHeaders sets the headers of every console answer: the strict CSP,
// no caching anywhere (pages hold cardholder-linked data and the CSRF
// token), no framing, no sniffing, no referrer.
func (s *Server) consoleHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Next()
}

func (s *Server) consoleStatic(c *gin.Context) {
	// Embedded files, small: they share the console's no-store rather
	// than risk a stale script after an upgrade.
	s.console.static.ServeHTTP(c.Writer, c.Request)
}

// apiResult is the answer of an internal API call.
type apiResult struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (r *apiResult) Header() http.Header         { return r.header }
func (r *apiResult) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *apiResult) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// ok reports a 2xx answer.
func (r *apiResult) ok() bool { return r.status >= 200 && r.status < 300 }

// decode decodes a JSON answer into v.
func (r *apiResult) decode(v any) error { return json.Unmarshal(r.body.Bytes(), v) }

// apiError is the contract error of a failed answer.
func (r *apiResult) apiError() *Error {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(r.body.Bytes(), &e) != nil || e.Error.Code == "" {
		return newError(r.status, "internal", "internal error")
	}
	return newError(r.status, e.Error.Code, e.Error.Message)
}

// callAPI runs one API request through the server's own router, as the
// session's principal, from the console request's origin: the API
// handler authorizes it, applies its scope, records its access entry and
// answers, exactly as for a bearer token. body, if not nil, is sent with
// Content-Type ctype.
func (s *Server) callAPI(c *gin.Context, method, path string, query url.Values, body io.Reader, ctype string) *apiResult {
	u := path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx := context.WithValue(c.Request.Context(), consolePrincipal{}, sessionOf(c).principal)
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return &apiResult{status: http.StatusInternalServerError, header: http.Header{}}
	}
	// The origin of the access entry is the person's, as the API would
	// see it: the peer, and the forwarding headers trusted proxies set.
	req.RemoteAddr = c.Request.RemoteAddr
	req.TLS = c.Request.TLS
	for _, h := range []string{"X-Forwarded-For", "X-Real-Ip"} {
		if v := c.Request.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res := &apiResult{header: http.Header{}}
	s.engine.ServeHTTP(res, req)
	if res.status == 0 {
		res.status = http.StatusOK
	}
	return res
}

// consoleCookieSecure reports whether cookies are marked Secure: under TLS,
// or when configured for a TLS-terminating proxy.
func (s *Server) consoleCookieSecure(c *gin.Context) bool {
	return c.Request.TLS != nil || s.cfg.Console.SecureCookies
}

// setCookie sets an HttpOnly cookie on /console/.
func (s *Server) setCookie(c *gin.Context, name, value string, maxAge int, same http.SameSite) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.consoleCookieSecure(c), SameSite: same,
	})
}

// pageData is what every page template gets.
type pageData struct {
	Title   string
	Nav     string // the current section
	User    *auth.Principal
	CSRF    string
	Error   *Error
	Receipt bool
	Data    any
}

// can reports whether the signed-in role is one of roles (for the
// navigation; the API decides).
func (d *pageData) Can(roles ...string) bool {
	return d.User != nil && slices.Contains(roles, string(d.User.Role))
}

// render answers a page. Titles are fixed words: never cardholder data.
func (s *Server) render(c *gin.Context, status int, page string, d *pageData) {
	t := s.console.pages[page]
	if t == nil {
		panic("api: no console page " + page)
	}
	if ss := sessionOf(c); ss != nil {
		d.User, d.CSRF = ss.principal, ss.csrf
	}
	d.Receipt = s.receiptsServed()
	c.Render(status, render.HTML{Template: t, Name: "layout", Data: d})
}

// renderError answers a page that says what went wrong, in the API's
// words (which never hold cardholder data or internals).
func (s *Server) renderError(c *gin.Context, nav string, e *Error) {
	title := "Something went wrong"
	switch e.Status {
	case http.StatusNotFound:
		title = "Not found"
	case http.StatusForbidden:
		title = "Not allowed"
	case http.StatusBadRequest:
		title = "Please check the form"
	case http.StatusServiceUnavailable:
		title = "Temporarily unavailable"
	}
	s.render(c, e.Status, "error", &pageData{Title: title, Nav: nav, Error: e})
}

// checkCSRF checks a form's CSRF token against want and, when the browser
// names it, that the form came from this origin. A refusal answers 403.
func (s *Server) checkCSRF(c *gin.Context, want string) bool {
	got := c.PostForm("csrf")
	if got == "" {
		got = c.GetHeader("X-CSRF-Token")
	}
	okOrigin := true
	if o := c.GetHeader("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		okOrigin = err == nil && strings.EqualFold(u.Host, c.Request.Host)
	}
	if want == "" || !okOrigin || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.render(c, http.StatusForbidden, "error", &pageData{Title: "Form refused", Error: newError(http.StatusForbidden, "csrf",
			"this form expired or did not come from this console; reload the page and try again")})
		c.Abort()
		return false
	}
	return true
}
