package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of `paytrail bench ingest`, so that a typo cannot start an
// unbounded run.
const (
	benchMaxEvents      = 100_000_000
	benchMaxConcurrency = 4096
	benchMaxMerchants   = 1000
	benchMaxCards       = 1_000_000
	// benchOpenTxs is how many transactions are in flight at once; the next
	// event advances one of them picked at random, so the stages of one
	// transaction arrive interleaved with other transactions' events.
	benchOpenTxs = 64
	// benchReadLimit caps how much of each answer is read.
	benchReadLimit = 64 << 10
)

const benchUsage = `usage: paytrail bench <subcommand> [flags]

subcommands:
  ingest   post correctly signed webhook events to a running server and print
           events/s and latency percentiles (the events are stored for good)
  query    read a running server as an auditor: transaction lists, views and
           card searches, with latency percentiles per kind
  baseline serve the bare baseline ingest is measured against (Gin and one
           synced Pebble write per event; no checks), for .ci/bench-ingest
  bytes    print where a stopped server's data dir spends its bytes: rows by
           kind and sstable blocks, per store, for .ci/bench-bytes

run 'paytrail bench ingest --help' or 'paytrail bench query --help' for their flags`

// cmdBench runs a bench subcommand: the load generators against a running
// server (ingest, query) and their helpers (baseline, bytes).
func cmdBench(ctx context.Context, e env) error {
	sub, err := subcommand(e, "bench", "bench needs a subcommand: ingest or baseline", benchUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "baseline":
		return cmdBenchBaseline(ctx, e)
	case "bytes":
		return cmdBenchBytes(ctx, e)
	case "query":
		return cmdBenchQuery(ctx, e)
	case "ingest":
	default:
		return usageError{fmt.Sprintf("unknown bench subcommand %q", sub), "use ingest, query, baseline or bytes"}
	}
	fs := newFlags("bench ingest", "--url URL [--source NAME] [--secret S] [--events N] [--concurrency C] [flags]")
	var rawURLs urlList
	fs.Var(&rawURLs, "url", "server base URL, e.g. http://127.0.0.1:8080 (required; repeat it, or separate by commas, to spread the load over a cluster's nodes)")
	retries := fs.Int("retries", 0, "retry a failed event (transport error, timeout or 5xx) up to N times, with the same event id, on the next --url")
	source := fs.String("source", "dev", "webhook source name")
	secret := fs.String("secret", "", "the source's signing secret (env PAYTRAIL_BENCH_SECRET)")
	events := fs.Int("events", 1000, "number of events to post")
	concurrency := fs.Int("concurrency", 16, "concurrent HTTP clients")
	scheme := fs.String("scheme", "standard", "signature scheme of the source: standard or stripe")
	merchants := fs.Int("merchants", 5, "number of distinct merchants")
	cards := fs.Int("cards", 50, "number of distinct cards (cardholders)")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	args, err := parseFlags(e, fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("bench ingest takes no arguments, got %q", args[0]), ""}
	}
	if len(rawURLs) == 0 {
		rawURLs = urlList{""}
	}
	var endpoints []string
	for _, u := range rawURLs {
		endpoint, err := webhookEndpoint(u, *source)
		if err != nil {
			return usageError{err.Error(), "example: --url http://127.0.0.1:8080 --source dev"}
		}
		endpoints = append(endpoints, endpoint)
	}
	sign, err := newBenchSigner(*scheme, first(*secret, e.getenv("PAYTRAIL_BENCH_SECRET")))
	if err != nil {
		return usageError{err.Error(), "use the secret printed by 'paytrail serve' on its first run, or the source's configured secret"}
	}
	switch {
	case *events < 1 || *events > benchMaxEvents:
		return usageError{fmt.Sprintf("--events must be between 1 and %d", benchMaxEvents), ""}
	case *concurrency < 1 || *concurrency > benchMaxConcurrency:
		return usageError{fmt.Sprintf("--concurrency must be between 1 and %d", benchMaxConcurrency), ""}
	case *merchants < 1 || *merchants > benchMaxMerchants:
		return usageError{fmt.Sprintf("--merchants must be between 1 and %d", benchMaxMerchants), ""}
	case *cards < 1 || *cards > benchMaxCards:
		return usageError{fmt.Sprintf("--cards must be between 1 and %d", benchMaxCards), ""}
	case *timeout <= 0:
		return usageError{"--timeout must be positive", ""}
	case *retries < 0 || *retries > 100:
		return usageError{"--retries must be between 0 and 100", ""}
	}
	run, err := newRunID()
	if err != nil {
		return err
	}
	b := &bench{
		endpoints:   endpoints,
		retries:     *retries,
		sign:        sign,
		events:      *events,
		concurrency: *concurrency,
		timeout:     *timeout,
		gen:         newBenchGen(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), run, *scheme, *merchants, *cards, time.Now),
		stderr:      e.stderr,
	}
	fmt.Fprintf(e.stderr, "paytrail: bench: posting %d %s events to %s with %d clients (run %s)\n", b.events, *scheme, strings.Join(endpoints, ", "), b.concurrency, run)
	res := b.run(ctx)
	res.print(e.stdout)
	switch {
	case res.sent < b.events:
		return exitError{exitFailure, fmt.Errorf("interrupted after %d of %d events (%d failed)", res.sent, b.events, res.failed())}
	case res.failed() > 0:
		return exitError{exitFailure, fmt.Errorf("%d of %d events failed", res.failed(), res.sent)}
	}
	return nil
}

// urlList is a repeatable, comma-separable --url flag.
type urlList []string

func (u *urlList) String() string { return strings.Join(*u, ",") }

func (u *urlList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*u = append(*u, s)
		}
	}
	return nil
}

// webhookEndpoint returns the webhook URL of source on the server at base.
func webhookEndpoint(base, source string) (string, error) {
	if base == "" {
		return "", errors.New("bench ingest needs --url")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--url must be an http or https base URL such as http://127.0.0.1:8080, got %q", base)
	}
	if source == "" || strings.ContainsAny(source, "/?#") {
		return "", fmt.Errorf("--source must be a plain source name, got %q", source)
	}
	return strings.TrimSuffix(u.String(), "/") + "/v1/webhooks/" + url.PathEscape(source), nil
}

func newRunID() (string, error) {
	var b [4]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", fmt.Errorf("failed to make a run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// benchSigner signs a request the way the source's processor would. It is
// written here from the schemes' specifications, independently of
// api/webhook, which is the code under test.
type benchSigner struct {
	scheme string
	key    []byte
}

// newBenchSigner checks secret for scheme. Its errors never contain the
// secret.
func newBenchSigner(scheme, secret string) (benchSigner, error) {
	switch scheme {
	case "standard":
		// Standard Webhooks: the key is the base64 after "whsec_".
		rest, ok := strings.CutPrefix(secret, "whsec_")
		if !ok {
			return benchSigner{}, errors.New("--secret must be a Standard Webhooks secret (whsec_ followed by base64)")
		}
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(key) == 0 {
			return benchSigner{}, errors.New("--secret is not valid base64 after whsec_")
		}
		return benchSigner{scheme: scheme, key: key}, nil
	case "stripe":
		// Stripe keys the HMAC with the whole endpoint secret string.
		if secret == "" {
			return benchSigner{}, errors.New("--secret is required (the endpoint's whsec_ signing secret)")
		}
		return benchSigner{scheme: scheme, key: []byte(secret)}, nil
	}
	return benchSigner{}, fmt.Errorf("--scheme must be standard or stripe, got %q", scheme)
}

// sign sets the signature headers for body, sent at now as message id.
func (s benchSigner) sign(h http.Header, id string, now time.Time, body []byte) {
	ts := now.Unix()
	switch s.scheme {
	case "standard":
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", "v1,"+standardSignature(s.key, id, ts, body))
	case "stripe":
		h.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", ts, stripeSignature(s.key, ts, body)))
	}
}

// standardSignature is the Standard Webhooks v1 signature: base64 of
// HMAC-SHA256(key, "<id>.<timestamp>.<body>").
func standardSignature(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// stripeSignature is Stripe's v1 signature: hex of
// HMAC-SHA256(secret, "<timestamp>.<body>").
func stripeSignature(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// bench is one load run: exactly events requests from concurrency workers.
type bench struct {
	// endpoints are the webhook URLs, one per node: worker w starts with
	// endpoint w mod len and retries on the next.
	endpoints   []string
	retries     int
	sign        benchSigner
	events      int
	concurrency int
	timeout     time.Duration
	gen         *benchGen
	stderr      io.Writer
}

// benchStats is one worker's tally, merged at the end.
type benchStats struct {
	latencies  []time.Duration // of successful requests
	duplicates int
	retries    int               // attempts repeated after a retryable failure
	errors     map[string]int    // by status code or failure kind
	examples   map[string]string // first error code or message per kind
}

func (s *benchStats) fail(kind, example string) {
	if s.errors == nil {
		s.errors, s.examples = map[string]int{}, map[string]string{}
	}
	s.errors[kind]++
	if _, ok := s.examples[kind]; !ok {
		s.examples[kind] = example
	}
}

// benchResult is the outcome of a run.
type benchResult struct {
	sent    int
	elapsed time.Duration
	benchStats
}

func (r *benchResult) failed() int { return r.benchStats.failed() }

// failTransport records a request that got no answer: canceled by ctx
// (the run was interrupted), timed out, or a transport error.
func (s *benchStats) failTransport(ctx context.Context, err error, timeout time.Duration) {
	switch {
	case ctx.Err() != nil:
		s.fail("canceled", "interrupted")
	case errors.Is(err, context.DeadlineExceeded):
		s.fail("timeout", fmt.Sprintf("no answer within %s", timeout))
	default:
		s.fail("transport", err.Error())
	}
}

// percentiles are the p50, p95, p99 and maximum of the sorted latencies.
func (s *benchStats) percentiles() (p50, p95, p99, maxLat time.Duration) {
	return percentile(s.latencies, 50), percentile(s.latencies, 95), percentile(s.latencies, 99), percentile(s.latencies, 100)
}

// printErrors lists the failures by kind, each with the first error seen,
// indented by indent; nothing when there were none.
func (s *benchStats) printErrors(w io.Writer, indent string) {
	if len(s.errors) == 0 {
		return
	}
	kinds := make([]string, 0, len(s.errors))
	for k := range s.errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "%serrors:\n", indent)
	for _, k := range kinds {
		fmt.Fprintf(w, "%s  %-10s %d  (first: %s)\n", indent, k, s.errors[k], s.examples[k])
	}
}

// failed counts the failed requests of every kind.
func (s *benchStats) failed() int {
	n := 0
	for _, c := range s.errors {
		n += c
	}
	return n
}

// run posts the events and returns the tally. It stops early, without
// error, when ctx is done; the result then has fewer than b.events sent.
func (b *bench) run(ctx context.Context) *benchResult {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = b.concurrency
	tr.MaxIdleConnsPerHost = b.concurrency
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	stats, elapsed := runPool(ctx, b.stderr, "events", b.events, b.concurrency,
		func(int) benchEvent { return b.gen.next() },
		func(w int, ev benchEvent, st *benchStats) bool { return b.postRetrying(ctx, client, w, ev, st) })
	res := &benchResult{elapsed: elapsed}
	for i := range stats {
		res.merge(&stats[i])
	}
	res.sent = len(res.latencies) + res.failed()
	slices.Sort(res.latencies)
	return res
}

// runPool runs n jobs, the ith made by next(i), on workers goroutines,
// each keeping its own tally of type S, and prints progress (done, failed,
// per second) to stderr every second; do reports whether a job succeeded.
// Once ctx is done no further job is made or run. It returns each
// worker's tally and the time the jobs took.
func runPool[J, S any](ctx context.Context, stderr io.Writer, unit string, n, workers int, next func(i int) J, do func(w int, job J, st *S) bool) ([]S, time.Duration) {
	jobs := make(chan J, workers)
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- next(i):
			case <-ctx.Done():
				return
			}
		}
	}()

	var done, failed atomic.Int64
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				d := done.Load()
				fmt.Fprintf(stderr, "paytrail: bench: %d/%d %s, %d errors, %.0f %s/s\n",
					d, n, unit, failed.Load(), float64(d)/time.Since(start).Seconds(), unit)
			}
		}
	}()

	stats := make([]S, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				if ctx.Err() != nil {
					continue // drain: the producer stops on its own
				}
				if !do(w, job, &stats[w]) {
					failed.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	<-progressDone
	return stats, elapsed
}

// merge adds o's tally to s.
func (s *benchStats) merge(o *benchStats) {
	s.latencies = append(s.latencies, o.latencies...)
	s.duplicates += o.duplicates
	s.retries += o.retries
	for k, n := range o.errors {
		if s.errors == nil {
			s.errors, s.examples = map[string]int{}, map[string]string{}
		}
		if _, ok := s.examples[k]; !ok {
			s.examples[k] = o.examples[k]
		}
		s.errors[k] += n
	}
}

// postRetrying posts ev from worker w, and on a failure that a retry can
// cure (no answer, a timeout, a 5xx) posts the same event again, with the
// same id, to the next endpoint, up to b.retries times: what a processor
// does when a node is down. Only the last attempt's outcome counts.
func (b *bench) postRetrying(ctx context.Context, client *http.Client, w int, ev benchEvent, st *benchStats) bool {
	for attempt := 0; ; attempt++ {
		endpoint := b.endpoints[(w+attempt)%len(b.endpoints)]
		if attempt == b.retries {
			return b.post(ctx, client, endpoint, ev, st)
		}
		var try benchStats
		if b.post(ctx, client, endpoint, ev, &try) {
			st.merge(&try)
			return true
		}
		retryable := false
		for kind := range try.errors {
			retryable = kind == "transport" || kind == "timeout" || strings.HasPrefix(kind, "5")
		}
		if !retryable || ctx.Err() != nil {
			st.merge(&try)
			return false
		}
		st.retries++
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// post sends one signed event, records its outcome in st and reports
// whether it succeeded (any 2xx). A request that ctx cancels counts as a
// failure of kind "canceled".
func (b *bench) post(ctx context.Context, client *http.Client, endpoint string, ev benchEvent, st *benchStats) bool {
	rctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(ev.body))
	if err != nil {
		st.fail("request", err.Error())
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "paytrail-bench")
	start := time.Now()
	b.sign.sign(req.Header, ev.id, start, ev.body)
	resp, err := client.Do(req)
	if err != nil {
		st.failTransport(ctx, err, b.timeout)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, benchReadLimit))
	resp.Body.Close()
	lat := time.Since(start)
	if err != nil {
		st.fail("transport", err.Error())
		return false
	}
	if resp.StatusCode/100 != 2 {
		st.fail(strconv.Itoa(resp.StatusCode), errorCode(body))
		return false
	}
	var ok struct {
		Duplicate bool `json:"duplicate"`
	}
	if json.Unmarshal(body, &ok) == nil && ok.Duplicate {
		st.duplicates++
	}
	st.latencies = append(st.latencies, lat)
	return true
}

// errorCode returns the code of a contract error body, or a hint that the
// body was something else.
func errorCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return "no error code in the answer"
	}
	return e.Error.Code
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// print writes the human summary and, last, the line scripts parse:
//
//	result events=N ok=N errors=N seconds=S events_per_s=R p50_ms=… p95_ms=… p99_ms=… max_ms=…
//
// events counts requests sent, events_per_s successful ones per second of
// wall time, and the latency percentiles are over successful requests.
func (r *benchResult) print(w io.Writer) {
	ok := len(r.latencies)
	secs := r.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(ok) / secs
	}
	p50, p95, p99, maxLat := r.percentiles()
	fmt.Fprintf(w, "sent %d events in %.2fs: %d ok (%d duplicates), %d failed", r.sent, secs, ok, r.duplicates, r.failed())
	if r.retries > 0 {
		fmt.Fprintf(w, ", %d retries", r.retries)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "throughput %.1f events/s\n", rate)
	fmt.Fprintf(w, "latency p50 %.1fms  p95 %.1fms  p99 %.1fms  max %.1fms\n", ms(p50), ms(p95), ms(p99), ms(maxLat))
	r.printErrors(w, "")
	fmt.Fprintf(w, "result events=%d ok=%d errors=%d seconds=%.3f events_per_s=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		r.sent, ok, r.failed(), secs, rate, ms(p50), ms(p95), ms(p99), ms(maxLat))
}

// benchEvent is one event body ready to sign and post.
type benchEvent struct {
	id   string // the event id, also the Standard Webhooks message id
	body []byte
}

// benchCurrency is an ISO 4217 currency with its minor-unit exponent and a
// plausible range of amounts in major units.
type benchCurrency struct {
	code     string
	exponent int
	min, max int64
}

// benchCurrencies covers exponents 0 (JPY), 2 and 3 (KWD).
var benchCurrencies = [...]benchCurrency{
	{"USD", 2, 1, 900}, {"EUR", 2, 1, 700}, {"GBP", 2, 1, 500}, {"JPY", 0, 100, 90000}, {"KWD", 3, 1, 250},
}

// benchBINs are well-known test card prefixes; generated numbers are
// completed with random digits and a Luhn check digit.
var benchBINs = [...]struct {
	bin, brand string
	length     int
}{
	{"411111", "visa", 16}, {"400005", "visa", 16}, {"555555", "mastercard", 16}, {"222300", "mastercard", 16},
	{"378282", "amex", 15}, {"601100", "discover", 16}, {"353011", "jcb", 16},
}

var (
	benchFirstNames = [...]string{"Ada", "Bruno", "Chioma", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ines", "Jonas", "Keiko", "Luca", "Maya", "Nikos", "Olga", "Pedro"}
	benchLastNames  = [...]string{"Adeyemi", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov"}
	benchCountries  = [...]string{"US", "DE", "FR", "GB", "JP", "KW", "PL", "PT", "NG", "SE"}
)

// benchCard is a cardholder with one card.
type benchCard struct {
	pan, brand, fingerprint string
	expMonth, expYear       int
	name, email, country    string
}

// benchTx is a transaction in flight: its remaining stages are emitted one
// event at a time.
type benchTx struct {
	id, chargeID, merchant string
	card                   *benchCard
	currency               benchCurrency
	amount                 int64
	start                  time.Time
	stages                 []string // generic types, e.g. "payment.authorized"
	next                   int
}

// benchGen generates realistic event bodies: several merchants, five
// currencies with their minor units, a fixed population of cards, and
// transactions that go through authorized → captured (→ refunded or
// chargeback), authorized → voided, or failed, their stages interleaved
// with other transactions'. It is used by one goroutine.
type benchGen struct {
	rng       *rand.Rand
	run       string
	scheme    string
	now       func() time.Time
	merchants []string
	cards     []benchCard
	open      []*benchTx
	txs       int
	events    int
}

// newBenchGen makes a generator. The card population depends only on
// cards, so repeated runs see the same returning customers; event and
// transaction ids carry run, so runs never collide.
func newBenchGen(rng *rand.Rand, run, scheme string, merchants, cards int, now func() time.Time) *benchGen {
	g := &benchGen{rng: rng, run: run, scheme: scheme, now: now}
	for i := range merchants {
		g.merchants = append(g.merchants, fmt.Sprintf("m_bench_%02d", i+1))
	}
	people := rand.New(rand.NewPCG(0x7061797472, 0x61696c)) // fixed: the same cardholders every run
	year := now().Year()
	for i := range cards {
		g.cards = append(g.cards, newBenchCard(people, i, year))
	}
	return g
}

// newBenchCard makes cardholder i with a card expiring after thisYear.
func newBenchCard(rng *rand.Rand, i, thisYear int) benchCard {
	b := benchBINs[rng.IntN(len(benchBINs))]
	digits := []byte(b.bin)
	for len(digits) < b.length-1 {
		digits = append(digits, byte('0'+rng.IntN(10)))
	}
	digits = append(digits, luhnCheckDigit(string(digits)))
	first, last := benchFirstNames[rng.IntN(len(benchFirstNames))], benchLastNames[rng.IntN(len(benchLastNames))]
	return benchCard{
		pan:         string(digits),
		brand:       b.brand,
		fingerprint: fmt.Sprintf("fp%014x", rng.Uint64()>>8),
		expMonth:    1 + rng.IntN(12),
		expYear:     thisYear + 1 + rng.IntN(5),
		name:        first + " " + last,
		email:       fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), i),
		country:     benchCountries[rng.IntN(len(benchCountries))],
	}
}

// luhnCheckDigit returns the digit that makes payload+digit pass the Luhn
// check. payload must be decimal digits.
func luhnCheckDigit(payload string) byte {
	sum := 0
	for i := range len(payload) {
		d := int(payload[len(payload)-1-i] - '0')
		if i%2 == 0 { // doubled: these positions are odd counting from the check digit
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// newTx starts a transaction with a random lifecycle.
func (g *benchGen) newTx() *benchTx {
	g.txs++
	cur := benchCurrencies[g.rng.IntN(len(benchCurrencies))]
	scale := int64(1)
	for range cur.exponent {
		scale *= 10
	}
	minor := cur.min*scale + g.rng.Int64N((cur.max-cur.min)*scale+1)
	tx := &benchTx{
		id:       fmt.Sprintf("pi_bench_%s_%06d", g.run, g.txs),
		chargeID: fmt.Sprintf("ch_bench_%s_%06d", g.run, g.txs),
		merchant: g.merchants[g.rng.IntN(len(g.merchants))],
		card:     &g.cards[g.rng.IntN(len(g.cards))],
		currency: cur,
		amount:   minor,
		start:    g.now().UTC().Add(-time.Duration(g.rng.IntN(3600)) * time.Second).Truncate(time.Second),
	}
	switch r := g.rng.IntN(100); {
	case r < 60:
		tx.stages = []string{"payment.authorized", "payment.captured"}
	case r < 80:
		tx.stages = []string{"payment.authorized", "payment.captured", "payment.refunded"}
	case r < 88:
		tx.stages = []string{"payment.authorized", "payment.voided"}
	case r < 95:
		tx.stages = []string{"payment.failed"}
	default:
		tx.stages = []string{"payment.authorized", "payment.captured", "payment.chargeback"}
	}
	return tx
}

// next returns the next event: a stage of a random open transaction.
func (g *benchGen) next() benchEvent {
	for len(g.open) < benchOpenTxs {
		g.open = append(g.open, g.newTx())
	}
	i := g.rng.IntN(len(g.open))
	tx := g.open[i]
	stage := tx.next
	tx.next++
	if tx.next == len(tx.stages) {
		g.open[i] = g.newTx()
	}
	g.events++
	id := fmt.Sprintf("evt_bench_%s_%08d", g.run, g.events)
	amount := tx.amount
	if tx.stages[stage] == "payment.refunded" && g.rng.IntN(2) == 0 {
		amount = max(1, tx.amount/2) // a partial refund
	}
	at := tx.start.Add(time.Duration(stage) * 90 * time.Second)
	var body any
	if g.scheme == "stripe" {
		body = g.stripeEvent(id, tx, tx.stages[stage], amount, at)
	} else {
		body = g.genericEvent(id, tx, tx.stages[stage], amount, at)
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // maps of strings and numbers always encode
	}
	return benchEvent{id: id, body: b}
}

// genericEvent is paytrail's generic event JSON (docs/webhooks.md), with a full
// PAN as such processors send it, and sometimes a CVC, which the server
// must strip.
func (g *benchGen) genericEvent(id string, tx *benchTx, typ string, amount int64, at time.Time) map[string]any {
	pan := tx.card.pan
	if g.rng.IntN(4) == 0 {
		pan = spacedPAN(pan)
	}
	card := map[string]any{"number": pan, "exp_month": tx.card.expMonth, "exp_year": tx.card.expYear, "brand": tx.card.brand}
	if typ == "payment.authorized" && g.rng.IntN(3) == 0 {
		card["cvc"] = fmt.Sprintf("%03d", g.rng.IntN(1000))
	}
	return map[string]any{
		"id":             id,
		"type":           typ,
		"occurred_at":    at.Format(time.RFC3339),
		"transaction_id": tx.id,
		"merchant_id":    tx.merchant,
		"amount":         amount,
		"currency":       tx.currency.code,
		"card":           card,
		"cardholder":     map[string]any{"name": tx.card.name, "email": tx.card.email, "country": tx.card.country},
		"ip":             fmt.Sprintf("203.0.113.%d", 1+g.rng.IntN(254)),
		"metadata":       map[string]any{"order": fmt.Sprintf("B-%d", 10000+g.rng.IntN(90000)), "bench_run": g.run},
	}
}

// spacedPAN groups a card number in fours, as it is printed on cards.
func spacedPAN(pan string) string {
	var sb strings.Builder
	for i := 0; i < len(pan); i += 4 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(pan[i:min(i+4, len(pan))])
	}
	return sb.String()
}

// stripeEvent is a Stripe event for the same lifecycle: charge.succeeded
// (uncaptured), charge.captured, charge.refunded, charge.failed,
// charge.dispute.created, and charge.expired for a voided authorization
// (a type paytrail stores as an opaque event). Stripe sends no PAN.
func (g *benchGen) stripeEvent(id string, tx *benchTx, typ string, amount int64, at time.Time) map[string]any {
	charge := map[string]any{
		"id":             tx.chargeID,
		"object":         "charge",
		"amount":         tx.amount,
		"currency":       strings.ToLower(tx.currency.code),
		"payment_intent": tx.id,
		"created":        tx.start.Unix(),
		"payment_method_details": map[string]any{"type": "card", "card": map[string]any{
			"brand": tx.card.brand, "last4": tx.card.pan[len(tx.card.pan)-4:], "exp_month": tx.card.expMonth,
			"exp_year": tx.card.expYear, "fingerprint": tx.card.fingerprint,
		}},
		"billing_details": map[string]any{"name": tx.card.name, "email": tx.card.email, "address": map[string]any{"country": tx.card.country}},
		"metadata":        map[string]any{"bench_run": g.run},
	}
	object := charge
	var stripeType string
	switch typ {
	case "payment.authorized":
		stripeType = "charge.succeeded"
		charge["captured"], charge["status"] = false, "succeeded"
	case "payment.captured":
		stripeType = "charge.captured"
		charge["captured"], charge["amount_captured"], charge["status"] = true, tx.amount, "succeeded"
	case "payment.refunded":
		stripeType = "charge.refunded"
		charge["captured"], charge["amount_captured"], charge["amount_refunded"], charge["refunded"] = true, tx.amount, amount, amount == tx.amount
	case "payment.failed":
		stripeType = "charge.failed"
		charge["captured"], charge["status"], charge["failure_code"] = false, "failed", "card_declined"
	case "payment.voided":
		stripeType = "charge.expired"
		charge["captured"], charge["status"] = false, "failed"
	case "payment.chargeback":
		stripeType = "charge.dispute.created"
		object = map[string]any{
			"id": "dp_" + strings.TrimPrefix(tx.chargeID, "ch_"), "object": "dispute", "amount": tx.amount,
			"currency": strings.ToLower(tx.currency.code), "charge": tx.chargeID, "payment_intent": tx.id,
			"status": "needs_response", "reason": "fraudulent",
		}
	}
	return map[string]any{
		"id":          id,
		"object":      "event",
		"api_version": "2026-03-25.dahlia",
		"created":     at.Unix(),
		"livemode":    false,
		"type":        stripeType,
		"account":     tx.merchant,
		"data":        map[string]any{"object": object},
	}
}
