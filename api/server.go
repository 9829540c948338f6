package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/api/witness"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/cluster"
)

// PolicyVersion is the privacy policy version this build enforces; every
// entry records it, so that a later policy never weakens protection of
// data collected earlier.
const PolicyVersion = 1

// Config holds the server's dependencies. Every field without a documented
// default is required.
type Config struct {
	Ledger   *ledger.Ledger
	Keys     *crypto.Keysets
	DataKeys *crypto.DataKeys
	KeyStore KeyStore
	// Cluster, if set, makes the server a node of a cluster: every write
	// is published to the cluster's stream and answered once this node
	// applied it, /readyz reports the node's lag, and /v1/cluster lists
	// the nodes. Nil is the embedded single node.
	Cluster *cluster.Node
	// Sources are the configured webhook sources.
	Sources []Source
	// Auth authenticates bearer tokens. The default is auth.Bearer over the
	// ledger's principal store.
	Auth auth.Authenticator
	// Logger never receives cardholder data. The default discards.
	Logger *slog.Logger
	// Registry receives the server's metrics. The default is a new registry.
	Registry *prometheus.Registry
	// MaxBody caps webhook and upload bodies. The default value is 1 MiB.
	MaxBody int64
	// MaxUpload caps settlement report uploads. The default value is 256 MiB.
	MaxUpload int64
	// HeaderReadTimeout bounds reading a request's headers, from the
	// connection's first byte or the end of the previous request. The
	// default value is 10s.
	HeaderReadTimeout time.Duration
	// BodyReadTimeout bounds reading a request body, from the end of its
	// headers to its last byte: webhook deliveries, JSON requests, and
	// any body a handler leaves unread (net/http drains up to 256 KiB of
	// it to reuse the connection). A body not in by then answers 408. The
	// default value is 10s: a processor sends 1 MiB in milliseconds, and
	// a stranger trickling bytes holds a connection no longer than this.
	BodyReadTimeout time.Duration
	// UploadReadTimeout replaces BodyReadTimeout for a reconciliation
	// upload (up to MaxUpload), once its caller has authenticated and the
	// upload is accepted for reading. The default value is 5m.
	UploadReadTimeout time.Duration
	// MaxWebhookBuffer caps the webhook body bytes held at once across
	// every delivery being received: bodies are buffered whole before the
	// signature is checked, so these are a stranger's bytes. A delivery
	// reserves its Content-Length (MaxBody if it has none) before reading;
	// one that does not fit answers 503 with Retry-After and reads
	// nothing. The default value is 64 MiB; it must be at least MaxBody.
	MaxWebhookBuffer int64
	// MaxUnauthenticatedConns caps the connections open at once on which
	// no request has authenticated (by bearer token, or by a webhook
	// signature in a delivery answered 2xx). A connection accepted beyond
	// it is closed at once. Serve enforces it. The default value is 1024.
	MaxUnauthenticatedConns int
	// DenialWindow and DenialBurst coalesce failed authentication
	// attempts: per origin and action, the first DenialBurst 401s of each
	// DenialWindow are recorded as an access entry each; later ones are
	// counted and recorded as one entry carrying the count when the window
	// ends (or when the server closes). The default values are 1s and 16.
	DenialWindow time.Duration
	DenialBurst  int
	// MaxDenialOrigins caps the origins whose attempts are tracked at
	// once; attempts from further origins are counted together under the
	// origin "(other origins)". The default value is 4096.
	MaxDenialOrigins int
	// TrustedProxies are the proxy addresses whose X-Forwarded-For is
	// believed for origin_ip. The default trusts none: origin is the TCP peer.
	TrustedProxies []string
	// Now is the clock. The default is time.Now.
	Now func() time.Time
	// DataDir is the data dir Ledger and KeyStore live in, for online
	// backups (GET /v1/admin/backup answers 503 without it).
	DataDir string
	// BackupMaxRate caps the bytes per second an online backup reads to
	// hash its snapshot and writes to stream it, so that ingestion keeps
	// the CPU and disk it needs. The default value is 64 MiB/s; a
	// negative value means no cap.
	BackupMaxRate int64
	// RewrapRate caps how many data keys per second the background
	// re-wrap after a datakey rotation rewrites. The default value is 2000.
	RewrapRate int
	// Witnesses are the C2SP tlog-witness witnesses every new checkpoint
	// is submitted to, in the background (api/witnessing.go). None: no
	// submitter runs.
	Witnesses []witness.Endpoint
	// WitnessQuorum is how many of Witnesses must cosign a checkpoint for
	// GET /v1/ledger/checkpoint?witnessed=1 to serve it. The default is a
	// majority of Witnesses.
	WitnessQuorum int
	// WitnessTiming tunes the submitter's timeouts, polling and backoff;
	// zero values keep its defaults.
	WitnessTiming witness.Timing
	// OIDC, if set, accepts the identity provider's JWTs besides paytrail
	// tokens (when Auth is unset) and signs people in to the console by
	// OIDC. nil: no single sign-on; the console takes a paytrail token.
	OIDC *auth.OIDC
	// Console configures the web console (console.go).
	Console ConsoleConfig
}

// Source is a configured webhook source.
type Source struct {
	Name            string
	Scheme          string   // stripe or standard
	Secrets         []string // newest first
	Tolerance       time.Duration
	DefaultMerchant string
	// Merchants are the merchants the source may post for ("*": any). If
	// nil: DefaultMerchant alone, or any merchant when it is empty.
	Merchants []string
}

// allows reports whether the source may post an event for merchant.
func (src Source) allows(merchant string) bool {
	switch {
	case src.Merchants != nil:
		return slices.Contains(src.Merchants, "*") || slices.Contains(src.Merchants, merchant)
	case src.DefaultMerchant != "":
		return merchant == src.DefaultMerchant
	}
	return true
}

// Server is paytrail's HTTP API.
type Server struct {
	cfg      Config
	ledger   *ledger.Ledger
	keys     *crypto.Keysets
	dataKeys *crypto.DataKeys
	keyStore KeyStore
	// appender orders and applies writes: the ledger itself, or the
	// cluster's stream.
	appender   Appender
	cluster    *cluster.Node
	principals *auth.Store
	auth       auth.Authenticator
	sources    map[string]Source
	log        *slog.Logger
	metrics    *metrics
	engine     *gin.Engine
	now        func() time.Time
	verifiers  []string // checkpoint verifier keys, primary first

	// keyPool hands out fresh, stored data keys, one per event.
	keyPool *keyPool
	// rawCodec packs an event's raw payload before it is sealed.
	rawCodec *webhook.RawCodec
	// beforeAppend, if set (by tests, before any request), runs in ingest
	// between sealing an event and appending it.
	beforeAppend atomic.Pointer[func(eventID string)]

	// witnesses submits checkpoints to witnesses; nil without any.
	witnesses *witness.Submitter
	// console is the web console's state (console.go).
	console *consoleState

	// logLimit keeps repeated warnings to one line per interval.
	logLimit *logLimiter

	// denials coalesces floods of failed authentication attempts.
	denials *denials
	// webhookBuf accounts the webhook body bytes being received.
	webhookBuf byteBudget
	// unauthConns counts the connections Serve holds on which no request
	// has authenticated.
	unauthConns atomic.Int64
	conns       sync.Map // net.Conn -> *connInfo, of Serve's connections

	// snapshotMu is held for writing across a backup's two snapshots and
	// for reading by each erasure, from its entry to the destruction of
	// its keys, so a backup holds an erasure whole or not at all.
	snapshotMu sync.RWMutex

	// rewrap re-wraps data keys in the background after a datakey rotation.
	rewrap *rewrapper
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil || cfg.Keys == nil || cfg.DataKeys == nil || cfg.KeyStore == nil {
		return nil, fmt.Errorf("api: Ledger, Keys, DataKeys and KeyStore are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 256 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HeaderReadTimeout <= 0 {
		cfg.HeaderReadTimeout = 10 * time.Second
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = 10 * time.Second
	}
	if cfg.UploadReadTimeout <= 0 {
		cfg.UploadReadTimeout = 5 * time.Minute
	}
	if cfg.MaxWebhookBuffer <= 0 {
		cfg.MaxWebhookBuffer = max(64<<20, cfg.MaxBody)
	}
	if cfg.MaxWebhookBuffer < cfg.MaxBody {
		return nil, fmt.Errorf("api: MaxWebhookBuffer (%d) is less than MaxBody (%d): no delivery could be received", cfg.MaxWebhookBuffer, cfg.MaxBody)
	}
	if cfg.MaxUnauthenticatedConns <= 0 {
		cfg.MaxUnauthenticatedConns = 1024
	}
	if cfg.DenialWindow <= 0 {
		cfg.DenialWindow = time.Second
	}
	if cfg.DenialBurst <= 0 {
		cfg.DenialBurst = 16
	}
	if cfg.MaxDenialOrigins <= 0 {
		cfg.MaxDenialOrigins = 4096
	}
	if cfg.BackupMaxRate == 0 {
		cfg.BackupMaxRate = 64 << 20
	}
	s := &Server{
		cfg:      cfg,
		ledger:   cfg.Ledger,
		keys:     cfg.Keys,
		dataKeys: cfg.DataKeys,
		keyStore: cfg.KeyStore,
		appender: cfg.Ledger,
		cluster:  cfg.Cluster,
		log:      cfg.Logger,
		now:      func() time.Time { return cfg.Now().UTC() },
		sources:  map[string]Source{},

		logLimit: newLogLimiter(logEvery),
	}
	s.webhookBuf.max = cfg.MaxWebhookBuffer
	s.denials = newDenials(cfg.DenialWindow, cfg.DenialBurst, cfg.MaxDenialOrigins, s.recordCoalesced)
	s.keyPool = newKeyPool(cfg.DataKeys, cfg.KeyStore, cfg.Logger)
	rc, err := webhook.NewRawCodec()
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.rawCodec = rc
	// An erasure a crash interrupted is finished before anything is served.
	if err := s.FinishErasures(context.Background()); err != nil {
		return nil, fmt.Errorf("api: failed to finish an interrupted erasure: %w", err)
	}
	if cfg.Cluster != nil {
		s.appender = cfg.Cluster
	}
	s.rewrap = newRewrapper(s)
	if err := s.rewrap.resume(cfg.Keys); err != nil {
		return nil, fmt.Errorf("api: failed to resume re-wrapping data keys: %w", err)
	}
	s.principals = &auth.Store{Ledger: sequencedLedger{cfg.Ledger, s.appender}, Policy: PolicyVersion, Now: s.now}
	s.auth = cfg.Auth
	if s.auth == nil {
		s.auth = auth.Tokens{Bearer: auth.Bearer{Lookup: s.principals}, OIDC: cfg.OIDC}
	}
	for _, src := range cfg.Sources {
		if _, dup := s.sources[src.Name]; dup {
			return nil, fmt.Errorf("api: duplicate webhook source %q", src.Name)
		}
		if src.Tolerance <= 0 {
			src.Tolerance = 5 * time.Minute
		}
		s.sources[src.Name] = src
	}
	vkeys, err := cfg.Keys.NoteVerifierKeys(cfg.Ledger.Origin())
	if err != nil {
		return nil, fmt.Errorf("failed to get checkpoint verifier keys: %w", err)
	}
	s.verifiers = vkeys
	s.metrics = newMetrics(cfg.Registry, cfg.Ledger, s)
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: bad trusted proxies: %w", err)
	}
	e.Use(s.recovery(), s.metrics.middleware(), s.bodyDeadline)
	e.NoRoute(func(c *gin.Context) { s.abort(c, errNotFound) })
	e.NoMethod(func(c *gin.Context) {
		s.abort(c, newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this path"))
	})
	s.engine = e
	s.routes(e, promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	// Last: nothing after it may fail and leave its goroutines running.
	if err := s.startWitnessing(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Principals returns the principal store (used to bootstrap the admin).
func (s *Server) Principals() *auth.Store { return s.principals }

// Routes lists "METHOD path" for every registered route (the OpenAPI test
// checks each one is documented).
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.engine.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// Serve runs the HTTP server on l until ctx ends, then drains in-flight
// requests (up to drain) and closes the server (see Close) before
// returning. Besides the header and body deadlines of Config, it closes
// connections accepted beyond Config.MaxUnauthenticatedConns.
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: s.cfg.HeaderReadTimeout,
		// A backstop only: bodyDeadline sets each request's body
		// deadline, and the upload one for accepted uploads.
		ReadTimeout: s.cfg.HeaderReadTimeout + s.cfg.UploadReadTimeout,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnContext: s.connContext,
		ConnState:   s.connState,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(capListener{Listener: l, s: s}) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil {
			err = fmt.Errorf("failed to drain requests: %w", serr)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return errors.Join(err, s.Close(cctx))
}

// Close records the failed authentication attempts still counted (see
// Config.DenialWindow), so that none is lost at shutdown. Call it after
// the last request and before closing the ledger; Serve does. Attempts
// after it are recorded one entry each.
func (s *Server) Close(ctx context.Context) error {
	s.rewrap.stop()
	s.stopWitnessing()
	if err := s.denials.close(ctx); err != nil {
		return fmt.Errorf("failed to record coalesced failed attempts: %w", err)
	}
	return nil
}

// connInfo is what Serve knows of one connection: whether it still counts
// as unauthenticated.
type connInfo struct {
	s           *Server
	unauthentic atomic.Bool
}

type connInfoKey struct{}

// capListener hands net/http only the connections that fit under
// MaxUnauthenticatedConns, each counted as unauthenticated; it closes the
// others as it accepts them, before any TLS handshake, so that a refused
// connection costs no handshake and no log line.
type capListener struct {
	net.Listener
	s *Server
}

func (l capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.unauthConns.Add(1) <= int64(l.s.cfg.MaxUnauthenticatedConns) {
			return c, nil
		}
		l.s.unauthConns.Add(-1)
		l.s.metrics.rejected.WithLabelValues(rejectConnections).Inc()
		c.Close()
	}
}

// connContext notes a connection capListener counted as unauthenticated.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	ci := &connInfo{s: s}
	ci.unauthentic.Store(true)
	s.conns.Store(c, ci)
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// connState stops counting a connection once it is gone.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if v, ok := s.conns.LoadAndDelete(c); ok {
		v.(*connInfo).authenticated()
	}
}

// authenticated stops counting the connection as unauthenticated.
func (ci *connInfo) authenticated() {
	if ci.unauthentic.CompareAndSwap(true, false) {
		ci.s.unauthConns.Add(-1)
	}
}

// markAuthenticated notes that a request on c's connection authenticated,
// so the connection no longer counts against MaxUnauthenticatedConns.
func markAuthenticated(c *gin.Context) {
	if ci, ok := c.Request.Context().Value(connInfoKey{}).(*connInfo); ok {
		ci.authenticated()
	}
}

// bodyDeadline gives a request body BodyReadTimeout to arrive, from the
// end of the headers. Reading the body to its end lifts the deadline:
// net/http then watches the connection for the client going away, and a
// deadline passing during that watch would cancel the request's context
// while the handler works. A handler may extend it (extendBodyDeadline).
func (s *Server) bodyDeadline(c *gin.Context) {
	if c.Request.ContentLength != 0 && c.Request.Body != nil && c.Request.Body != http.NoBody {
		rc := http.NewResponseController(c.Writer)
		if rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout)) == nil {
			c.Request.Body = &deadlineBody{ReadCloser: c.Request.Body, rc: rc}
		}
	}
	c.Next()
}

// extendBodyDeadline gives the rest of the request body d to arrive.
func extendBodyDeadline(c *gin.Context, d time.Duration) {
	if _, ok := c.Request.Body.(*deadlineBody); ok {
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(d))
	}
}

// deadlineBody is a request body that lifts the connection's read deadline
// once it has been read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// isBodyTimeout reports whether a body read failed on its deadline.
func isBodyTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// byteBudget is a count of bytes that may be held at once.
type byteBudget struct {
	max  int64
	used atomic.Int64
}

// acquire reserves n bytes, if they fit.
func (b *byteBudget) acquire(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *byteBudget) release(n int64) { b.used.Add(-n) }

// webhookBody receives a webhook delivery's body for ingest, within the
// bounds a stranger's request gets: the body deadline (408), a
// reservation of its bytes in MaxWebhookBuffer (503 with Retry-After when
// it does not fit), and MaxBody (413). An unknown source is left to ingest,
// which answers 404 without reading anything. A delivery answered 2xx was
// signed, and its connection counts as authenticated from then on.
func (s *Server) webhookBody(c *gin.Context) {
	src, ok := s.sources[c.Param("source")]
	if !ok {
		c.Next()
		return
	}
	n := s.cfg.MaxBody + 1 // the most read: one byte over the limit
	if cl := c.Request.ContentLength; cl >= 0 && cl < n {
		n = cl
	}
	if !s.webhookBuf.acquire(n) {
		s.metrics.rejected.WithLabelValues(rejectWebhookBuffer).Inc()
		s.webhookResult(src, "overloaded")
		c.Header("Retry-After", "1")
		s.abort(c, errOverloaded)
		return
	}
	defer s.webhookBuf.release(n)
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, n))
	switch {
	case isBodyTimeout(err):
		s.metrics.rejected.WithLabelValues(rejectBodyTimeout).Inc()
		s.webhookResult(src, "body_timeout")
		s.abort(c, errBodyTimeout)
		return
	case err != nil:
		s.abort(c, badRequest("unreadable_body", "could not read the request body"))
		return
	case int64(len(body)) > s.cfg.MaxBody:
		s.webhookResult(src, "too_large")
		s.abort(c, errBodyTooLarge)
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Next()
	if st := c.Writer.Status(); st >= 200 && st < 300 {
		markAuthenticated(c)
	}
}
