package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// Log is what the submitter needs of the ledger.
type Log interface {
	// LatestCheckpoint returns the newest signed checkpoint note.
	LatestCheckpoint() ([]byte, error)
	// ConsistencyProof proves the tree of size from a prefix of the one of
	// size to (1 <= from <= to).
	ConsistencyProof(from, to uint64) ([][]byte, error)
	// AddCosignatures durably stores verified cosignatures of the
	// checkpoint of size.
	AddCosignatures(size uint64, sigs []note.Signature) error
	// Cosignatures returns those stored for the checkpoint of size.
	Cosignatures(size uint64) ([]note.Signature, error)
	// WalkCosigned visits the sizes with cosignatures, newest first.
	WalkCosigned(fn func(size uint64, sigs []note.Signature) bool) error
}

// Endpoint is one configured witness.
type Endpoint struct {
	// Name labels the witness in metrics and logs: 1 to 64 characters of
	// [A-Za-z0-9._-].
	Name string
	// URL is the witness's submission prefix; add-checkpoint is posted to
	// URL + "/add-checkpoint".
	URL string
	// Key is the witness's cosignature verifier key (C2SP signed-note
	// vkey of type 0x04, Ed25519, or 0x06, ML-DSA-44).
	Key string
}

// Timing tunes the submitter. Zero values keep the defaults.
type Timing struct {
	// Timeout bounds one add-checkpoint request, answer included. The
	// default value is 10s.
	Timeout time.Duration
	// Poll is how often each witness's goroutine looks for a new
	// checkpoint. The default value is 1s (the checkpoint interval).
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure, doubled
	// at each consecutive one. The defaults are 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
}

// SubmitterConfig configures [NewSubmitter].
type SubmitterConfig struct {
	Log       Log
	Witnesses []Endpoint
	// Quorum is how many witnesses must cosign a checkpoint for it to be
	// "witnessed" ([Submitter.Witnessed]); 1 <= Quorum <= len(Witnesses).
	Quorum int
	Timing Timing
	// Client sends the requests. The default is a client of its own,
	// with keep-alive connections.
	Client *http.Client
	// Registry receives the witness metrics. Required.
	Registry prometheus.Registerer
	// Logger receives failures, never more than one line per witness per
	// error kind per minute. The default discards.
	Logger *slog.Logger
}

// Error kinds, the fixed values of the "kind" label.
const (
	KindNone           = "none"
	KindTimeout        = "timeout"
	KindNetwork        = "network"
	KindBadRequest     = "bad_request"   // 400
	KindForbidden      = "forbidden"     // 403: it does not trust our key
	KindNotFound       = "not_found"     // 404: it does not know our log
	KindConflict       = "conflict"      // 409 again after learning its size
	KindUnprocessable  = "unprocessable" // 422: it refused our proof
	KindHTTPStatus     = "http_status"   // any other status
	KindBadResponse    = "bad_response"  // a 200 or 409 body that is not one
	KindBadCosignature = "bad_cosignature"
	KindWitnessAhead   = "witness_ahead" // it cosigned a larger tree than ours
	KindLocal          = "local"         // our own ledger failed
)

var kinds = []string{KindNone, KindTimeout, KindNetwork, KindBadRequest, KindForbidden, KindNotFound, KindConflict,
	KindUnprocessable, KindHTTPStatus, KindBadResponse, KindBadCosignature, KindWitnessAhead, KindLocal}

// submitError is a failed submission of one kind.
type submitError struct {
	kind string
	err  error
}

func (e *submitError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *submitError) Unwrap() error { return e.err }

func fail(kind string, format string, args ...any) error {
	return &submitError{kind, fmt.Errorf(format, args...)}
}

// Submitter submits the ledger's checkpoints to witnesses.
type Submitter struct {
	cfg     SubmitterConfig
	workers []*worker
	policy  witness.Group
	keys    map[nameHash]bool
	log     *slog.Logger

	mu           sync.Mutex
	witnessed    uint64 // the newest size with a quorum of cosignatures, if hasWitnessed
	hasWitnessed bool

	cancel context.CancelFunc
	done   chan struct{}
}

type nameHash struct {
	name string
	hash uint32
}

// worker is one witness's goroutine state.
type worker struct {
	s    *Submitter
	ep   Endpoint
	url  string
	key  note.Verifier
	size uint64 // the witness's size, as last learned
	// cosigned is the size of the newest checkpoint it cosigned for us
	// in this run.
	cosigned    uint64
	hasCosigned bool

	cosignedGauge prometheus.Gauge
	failures      *prometheus.CounterVec
	lastError     *prometheus.GaugeVec
}

// NewSubmitter checks cfg and registers the metrics. Start runs it.
func NewSubmitter(cfg SubmitterConfig) (*Submitter, error) {
	if cfg.Log == nil || cfg.Registry == nil || len(cfg.Witnesses) == 0 {
		return nil, errors.New("witness: Log, Registry and at least one witness are required")
	}
	if cfg.Quorum < 1 || cfg.Quorum > len(cfg.Witnesses) {
		return nil, fmt.Errorf("witness: quorum must be between 1 and %d (the number of witnesses)", len(cfg.Witnesses))
	}
	t := &cfg.Timing
	if t.Timeout <= 0 {
		t.Timeout = 10 * time.Second
	}
	if t.Poll <= 0 {
		t.Poll = time.Second
	}
	if t.MinBackoff <= 0 {
		t.MinBackoff = time.Second
	}
	if t.MaxBackoff <= 0 {
		t.MaxBackoff = 5 * time.Minute
	}
	t.MaxBackoff = max(t.MaxBackoff, t.MinBackoff)
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Submitter{cfg: cfg, keys: map[nameHash]bool{}, log: cfg.Logger}
	cosigned := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "paytrail_witness_cosigned_size", Help: "Tree size of the newest checkpoint each witness cosigned since start.",
	}, []string{"witness"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "paytrail_witness_failures_total", Help: "Failed checkpoint submissions, by witness and error kind.",
	}, []string{"witness", "kind"})
	lastError := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "paytrail_witness_last_error", Help: "1 for the kind of each witness's last submission result (kind none: it succeeded).",
	}, []string{"witness", "kind"})
	names := map[string]bool{}
	var comps []witness.Witness
	for _, ep := range cfg.Witnesses {
		if !validName(ep.Name) || names[ep.Name] {
			return nil, fmt.Errorf("witness: name %q is empty, a duplicate, or not 1 to 64 characters of A-Z a-z 0-9 . _ -", ep.Name)
		}
		names[ep.Name] = true
		u, v, err := ep.check()
		if err != nil {
			return nil, err
		}
		if s.keys[nameHash{v.Name(), v.KeyHash()}] {
			return nil, fmt.Errorf("witness %s: the same key as another witness", ep.Name)
		}
		s.keys[nameHash{v.Name(), v.KeyHash()}] = true
		w := &worker{s: s, ep: ep, url: u.JoinPath("add-checkpoint").String(), key: v,
			cosignedGauge: cosigned.WithLabelValues(ep.Name), failures: failures, lastError: lastError}
		for _, k := range kinds {
			if k != KindNone {
				failures.WithLabelValues(ep.Name, k)
			}
			lastError.WithLabelValues(ep.Name, k)
		}
		s.workers = append(s.workers, w)
		comps = append(comps, witness.Witness{Key: v, URL: w.url})
	}
	s.policy = witness.Group{N: cfg.Quorum}
	for _, c := range comps {
		s.policy.Components = append(s.policy.Components, c)
	}
	if err := registerAll(cfg.Registry, cosigned, failures, lastError,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "paytrail_witnessed_size", Help: "Tree size of the newest checkpoint cosigned by a quorum of witnesses (0: none).",
		}, func() float64 { n, _ := s.Witnessed(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "paytrail_witnessed_lag", Help: "Entries in the latest checkpoint not yet covered by one a quorum of witnesses cosigned.",
		}, func() float64 { return float64(s.Lag()) }),
	); err != nil {
		return nil, err
	}
	return s, nil
}

// Check reports what is wrong with the endpoint, if anything: its name,
// URL or key.
func (ep Endpoint) Check() error {
	_, _, err := ep.check()
	return err
}

func (ep Endpoint) check() (*url.URL, note.Verifier, error) {
	if !validName(ep.Name) {
		return nil, nil, fmt.Errorf("witness name %q is not 1 to 64 characters of A-Z a-z 0-9 . _ -", ep.Name)
	}
	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, nil, fmt.Errorf("witness %s: url must be an http or https URL (the submission prefix)", ep.Name)
	}
	v, err := fnote.NewVerifierForCosignatureV1(ep.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("witness %s: key is not a cosignature verifier key: %w", ep.Name, err)
	}
	return u, v, nil
}

func registerAll(r prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("witness: failed to register metrics: %w", err)
		}
	}
	return nil
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Start runs the submitter in the background until Close.
func (s *Submitter) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1 + len(s.workers))
	go func() { defer wg.Done(); s.findWitnessed(ctx) }()
	for _, w := range s.workers {
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	go func() { wg.Wait(); close(s.done) }()
}

// Close stops the submitter and waits for its goroutines; a request in
// flight is abandoned.
func (s *Submitter) Close() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// Witnessed returns the size of the newest checkpoint cosigned by a
// quorum of the configured witnesses, if any.
func (s *Submitter) Witnessed() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.witnessed, s.hasWitnessed
}

// Lag is the number of entries in the latest checkpoint that no
// witnessed checkpoint covers yet.
func (s *Submitter) Lag() uint64 {
	cp, err := s.cfg.Log.LatestCheckpoint()
	if err != nil {
		return 0
	}
	c, err := parseCheckpoint(cp)
	if err != nil {
		return 0
	}
	w, _ := s.Witnessed()
	if w >= c.Size {
		return 0
	}
	return c.Size - w
}

// Satisfied reports whether the cosigned checkpoint cp carries a quorum
// of valid cosignatures (formats' witness policy).
func (s *Submitter) Satisfied(cp []byte) bool { return s.policy.Satisfied(cp) }

// findWitnessed finds, at start, the newest stored checkpoint a quorum
// cosigned; newer ones found meanwhile by the workers win. It walks the
// cosignature rows back from the newest and stops at the first quorum,
// so it reads few rows unless witnesses were failing for long; it runs
// in the background and delays nothing.
func (s *Submitter) findWitnessed(ctx context.Context) {
	err := s.cfg.Log.WalkCosigned(func(size uint64, sigs []note.Signature) bool {
		if ctx.Err() != nil {
			return false
		}
		if s.countKnown(sigs) >= s.cfg.Quorum {
			s.noteWitnessed(size)
			return false
		}
		return true
	})
	if err != nil && ctx.Err() == nil {
		s.log.Error("failed to read stored cosignatures", "err", err)
	}
}

func (s *Submitter) countKnown(sigs []note.Signature) int {
	seen := map[nameHash]bool{}
	for _, sig := range sigs {
		k := nameHash{sig.Name, sig.Hash}
		if s.keys[k] {
			seen[k] = true
		}
	}
	return len(seen)
}

func (s *Submitter) noteWitnessed(size uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasWitnessed || size > s.witnessed {
		s.witnessed, s.hasWitnessed = size, true
	}
}

// stored is called after a witness's cosignature of size was stored.
func (s *Submitter) stored(size uint64) {
	sigs, err := s.cfg.Log.Cosignatures(size)
	if err != nil {
		return
	}
	if s.countKnown(sigs) >= s.cfg.Quorum {
		s.noteWitnessed(size)
	}
}

// run submits the newest checkpoint whenever there is one the witness
// has not cosigned, one request at a time.
func (w *worker) run(ctx context.Context) {
	t := w.s.cfg.Timing
	backoff := time.Duration(0)
	wait := time.Duration(0)
	lastLogged := map[string]time.Time{}
	for {
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		cp, err := w.s.cfg.Log.LatestCheckpoint()
		if err != nil {
			wait = t.Poll
			continue
		}
		c, err := parseCheckpoint(cp)
		if err != nil || (w.hasCosigned && c.Size <= w.cosigned) {
			wait = t.Poll
			continue
		}
		err = w.submit(ctx, cp, c)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			kind := KindLocal
			var se *submitError
			if errors.As(err, &se) {
				kind = se.kind
			}
			w.failures.WithLabelValues(w.ep.Name, kind).Inc()
			w.setLast(kind)
			if now := time.Now(); now.Sub(lastLogged[kind]) >= time.Minute {
				lastLogged[kind] = now
				w.s.log.Warn("witness submission failed", "witness", w.ep.Name, "size", c.Size, "kind", kind, "err", err)
			}
			backoff = min(max(2*backoff, t.MinBackoff), t.MaxBackoff)
			wait = backoff
			continue
		}
		w.setLast(KindNone)
		backoff, wait = 0, 0 // a newer checkpoint may be waiting already
	}
}

func (w *worker) setLast(kind string) {
	for _, k := range kinds {
		v := 0.0
		if k == kind {
			v = 1
		}
		w.lastError.WithLabelValues(w.ep.Name, k).Set(v)
	}
}

// submit sends checkpoint cp (of c) to the witness, with a consistency
// proof from the witness's size, learning that size from a 409 answer,
// and stores the verified cosignature.
func (w *worker) submit(ctx context.Context, cp []byte, c *log.Checkpoint) error {
	for attempt := 0; ; attempt++ {
		old := w.size
		if old > c.Size {
			// It cosigned a larger tree of this log than the ledger's
			// newest: nothing this ledger could send is consistent with
			// what it saw. (A ledger restored from an old backup?)
			return fail(KindWitnessAhead, "the witness cosigned size %d, the ledger's newest checkpoint is %d", old, c.Size)
		}
		var proof [][]byte
		if old > 0 && old < c.Size {
			p, err := w.s.cfg.Log.ConsistencyProof(old, c.Size)
			if err != nil {
				return fail(KindLocal, "failed to build the consistency proof from %d to %d: %w", old, c.Size, err)
			}
			proof = p
		}
		status, ctype, body, err := w.post(ctx, AddCheckpoint{OldSize: old, Proof: proof, Checkpoint: cp}.Marshal())
		if err != nil {
			return err
		}
		switch status {
		case http.StatusOK:
			return w.accept(cp, c.Size, body)
		case http.StatusConflict:
			mt, _, _ := mime.ParseMediaType(ctype)
			n, perr := ParseSize(bytes.TrimSuffix(body, []byte("\n")))
			if mt != SizeContentType || perr != nil || !bytes.HasSuffix(body, []byte("\n")) {
				return fail(KindBadResponse, "a 409 answer that is not a %s body", SizeContentType)
			}
			w.size = n
			if attempt > 0 {
				return fail(KindConflict, "the witness answered 409 twice (size %d)", n)
			}
		case http.StatusBadRequest:
			return fail(KindBadRequest, "the witness answered 400")
		case http.StatusForbidden:
			return fail(KindForbidden, "the witness answered 403: it does not trust the ledger's key")
		case http.StatusNotFound:
			return fail(KindNotFound, "the witness answered 404: it does not know this log")
		case http.StatusUnprocessableEntity:
			// Our proof from its size did not convince it: its size may be
			// stale; ask it again next time.
			w.size = 0
			return fail(KindUnprocessable, "the witness answered 422 to a proof from size %d", old)
		default:
			return fail(KindHTTPStatus, "the witness answered %d", status)
		}
	}
}

// maxResponse caps a witness's answer: a few signature lines.
const maxResponse = 64 << 10

func (w *worker) post(ctx context.Context, body []byte) (status int, ctype string, resp []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.s.cfg.Timing.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, fail(KindLocal, "failed to build the request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	r, err := w.s.cfg.Client.Do(req)
	if err != nil {
		return 0, "", nil, netFailure(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, maxResponse+1))
	if err != nil {
		return 0, "", nil, netFailure(err)
	}
	if len(b) > maxResponse {
		return 0, "", nil, fail(KindBadResponse, "the answer exceeds %d bytes", maxResponse)
	}
	return r.StatusCode, r.Header.Get("Content-Type"), b, nil
}

func netFailure(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fail(KindTimeout, "no answer in time: %w", err)
	}
	return fail(KindNetwork, "%w", err)
}

// accept verifies the cosignature lines of a 200 answer as the spec
// suggests: appended to the checkpoint, the note must open with the
// witness's key. Lines of other keys are ignored; only the witness's
// verified cosignatures are stored.
func (w *worker) accept(cp []byte, size uint64, body []byte) error {
	if len(body) == 0 || !bytes.HasPrefix(body, []byte("\u2014 ")) || !bytes.HasSuffix(body, []byte("\n")) || bytes.Contains(body, []byte("\n\n")) {
		return fail(KindBadResponse, "the 200 answer is not signature lines")
	}
	n, err := note.Open(append(bytes.Clone(cp), body...), note.VerifierList(w.key))
	if err != nil {
		return fail(KindBadCosignature, "no valid cosignature by the witness's key: %w", err)
	}
	if err := w.s.cfg.Log.AddCosignatures(size, n.Sigs); err != nil {
		return fail(KindLocal, "failed to store the cosignature: %w", err)
	}
	w.size, w.cosigned, w.hasCosigned = size, size, true
	w.cosignedGauge.Set(float64(size))
	w.s.stored(size)
	return nil
}

// parseCheckpoint reads the body of a checkpoint note the ledger signed.
func parseCheckpoint(cp []byte) (*log.Checkpoint, error) {
	text, _, ok := bytes.Cut(cp, []byte("\n\n"))
	if !ok {
		return nil, errors.New("malformed checkpoint note")
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal(append(text, '\n')); err != nil {
		return nil, err
	}
	return &c, nil
}
