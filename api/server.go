package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/crypto"
	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/keystore"
)

// PolicyVersion is the privacy policy version this build enforces; every
// entry records it (DESIGN.md policy item 7).
const PolicyVersion = 1

// Config holds the server's dependencies. Every field without a documented
// default is required.
type Config struct {
	Ledger   *ledger.Ledger
	Keys     *crypto.Keysets
	DataKeys *crypto.DataKeys
	KeyStore *keystore.Store
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
	// TrustedProxies are the proxy addresses whose X-Forwarded-For is
	// believed for origin_ip. The default trusts none: origin is the TCP peer.
	TrustedProxies []string
	// Now is the clock. The default is time.Now.
	Now func() time.Time
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
	cfg        Config
	ledger     *ledger.Ledger
	keys       *crypto.Keysets
	dataKeys   *crypto.DataKeys
	keyStore   *keystore.Store
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
	// beforeAppend, if set (by tests, before any request), runs in ingest
	// between sealing an event and appending it.
	beforeAppend atomic.Pointer[func(eventID string)]

	badSigMu         sync.Mutex
	badSigLast       map[string]time.Time
	badSigSuppressed map[string]int
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
	s := &Server{
		cfg:      cfg,
		ledger:   cfg.Ledger,
		keys:     cfg.Keys,
		dataKeys: cfg.DataKeys,
		keyStore: cfg.KeyStore,
		log:      cfg.Logger,
		now:      func() time.Time { return cfg.Now().UTC() },
		sources:  map[string]Source{},

		badSigLast:       map[string]time.Time{},
		badSigSuppressed: map[string]int{},
	}
	s.keyPool = newKeyPool(cfg.DataKeys, cfg.KeyStore, cfg.Logger)
	// An erasure a crash interrupted is finished before anything is served.
	if err := s.FinishErasures(context.Background()); err != nil {
		return nil, fmt.Errorf("api: failed to finish an interrupted erasure: %w", err)
	}
	s.principals = &auth.Store{Ledger: cfg.Ledger, Policy: PolicyVersion, Now: s.now}
	s.auth = cfg.Auth
	if s.auth == nil {
		s.auth = auth.Bearer{Lookup: s.principals}
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
	s.metrics = newMetrics(cfg.Registry, cfg.Ledger)
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: bad trusted proxies: %w", err)
	}
	e.Use(s.recovery(), s.metrics.middleware())
	e.NoRoute(func(c *gin.Context) { s.abort(c, errNotFound) })
	e.NoMethod(func(c *gin.Context) {
		s.abort(c, newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this path"))
	})
	s.engine = e
	s.routes(e, promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
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
// requests (up to drain) before returning.
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("failed to drain requests: %w", err)
	}
	return nil
}
