package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits and sizes of `paytrail bench query`.
const (
	benchMaxRequests = 10_000_000
	// benchListLimit is the page size of the list requests.
	benchListLimit = 50
	// benchQueryReadLimit caps how much of a read answer is read: a card
	// search answers up to 500 transaction summaries.
	benchQueryReadLimit = 8 << 20
	// benchPoolSize caps the transaction ids kept from list answers for the
	// view requests; past it, a new id replaces a random one.
	benchPoolSize = 100_000
)

// queryOp is a kind of read request.
type queryOp int

const (
	opList queryOp = iota
	opView
	opSearch
	queryOps // the number of kinds
)

func (o queryOp) String() string { return [...]string{"list", "view", "search"}[o] }

// cmdBenchQuery measures the read paths of a running server: transaction
// lists, transaction views and card searches, interleaved. It takes an
// admin token, creates an auditor (merchants "*") for the run, reads as
// that auditor and revokes it at the end.
func cmdBenchQuery(ctx context.Context, e env) error {
	fs := newFlags("bench query", "--url URL [--token T] [--requests N] [--concurrency C] [flags]")
	rawURL := fs.String("url", "", "server base URL, e.g. http://127.0.0.1:8080 (required)")
	token := fs.String("token", "", "an admin token (env PAYTRAIL_BENCH_TOKEN); the bench creates an auditor for the run with it and revokes it at the end")
	requests := fs.Int("requests", 1000, "requests of each kind: list, view and search")
	concurrency := fs.Int("concurrency", 16, "concurrent HTTP clients")
	merchants := fs.Int("merchants", 5, "merchants of the bench ingest runs (m_bench_01...): lists pick one at random")
	cards := fs.Int("cards", 50, "cards of the bench ingest runs (or fewer): searches pick one at random")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	args, err := parseFlags(e, fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usageError{fmt.Sprintf("bench query takes no arguments, got %q", args[0]), ""}
	}
	base, err := benchBaseURL(*rawURL)
	if err != nil {
		return usageError{err.Error(), "example: --url http://127.0.0.1:8080"}
	}
	admin := first(*token, e.getenv("PAYTRAIL_BENCH_TOKEN"))
	switch {
	case admin == "":
		return usageError{"bench query needs an admin token: --token or PAYTRAIL_BENCH_TOKEN", "use the admin token that 'paytrail serve' prints on its first run"}
	case *requests < 1 || *requests > benchMaxRequests:
		return usageError{fmt.Sprintf("--requests must be between 1 and %d", benchMaxRequests), ""}
	case *concurrency < 1 || *concurrency > benchMaxConcurrency:
		return usageError{fmt.Sprintf("--concurrency must be between 1 and %d", benchMaxConcurrency), ""}
	case *merchants < 1 || *merchants > benchMaxMerchants:
		return usageError{fmt.Sprintf("--merchants must be between 1 and %d", benchMaxMerchants), ""}
	case *cards < 1 || *cards > benchMaxCards:
		return usageError{fmt.Sprintf("--cards must be between 1 and %d", benchMaxCards), ""}
	case *timeout <= 0:
		return usageError{"--timeout must be positive", ""}
	}
	run, err := newRunID()
	if err != nil {
		return err
	}
	// The same merchants and card population as bench ingest's.
	gen := newBenchGen(rand.New(rand.NewPCG(1, 2)), run, "standard", *merchants, *cards, time.Now)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = *concurrency
	tr.MaxIdleConnsPerHost = *concurrency
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	reader, err := createBenchReader(ctx, client, base, admin, "bench query "+run, *timeout)
	if err != nil {
		return err
	}
	defer func() {
		// Also after an interrupt: the token was never shown, but a live
		// credential should not outlast the run.
		rctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if err := revokeBenchReader(rctx, client, base, admin, reader.ID); err != nil {
			fmt.Fprintf(e.stderr, "paytrail: warning: %s\n", err)
			fmt.Fprintf(e.stderr, "paytrail: hint: revoke it with DELETE /v1/principals/%s\n", reader.ID)
		}
	}()

	q := &queryBench{
		base: base, token: reader.Token, requests: *requests, concurrency: *concurrency, timeout: *timeout,
		merchants: gen.merchants, cards: gen.cards, client: client, stderr: e.stderr,
	}
	fmt.Fprintf(e.stderr, "paytrail: bench: reading from %s: %d lists, %d views and %d card searches with %d clients as auditor %s (run %s)\n",
		base, q.requests, q.requests, q.requests, q.concurrency, reader.ID, run)
	n := q.learnSpans(ctx)
	fmt.Fprintf(e.stderr, "paytrail: bench: learnt the span of each merchant's transactions with %d untimed one-item lists\n", n)
	res := q.run(ctx)
	res.print(e.stdout)
	total, failed := 3*q.requests, res.failed()
	switch {
	case res.sent < total:
		return exitError{exitFailure, fmt.Errorf("interrupted after %d of %d requests (%d failed)", res.sent, total, failed)}
	case failed > 0:
		return exitError{exitFailure, fmt.Errorf("%d of %d requests failed", failed, res.sent)}
	}
	return nil
}

// benchBaseURL checks a server base URL and returns it without a final
// slash.
func benchBaseURL(base string) (string, error) {
	if base == "" {
		return "", errors.New("bench query needs --url")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--url must be an http or https base URL such as http://127.0.0.1:8080, got %q", base)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// benchReader is the auditor principal a query run reads as.
type benchReader struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// createBenchReader creates an auditor for every merchant with the admin
// token. Its errors never contain a token.
func createBenchReader(ctx context.Context, client *http.Client, base, admin, name string, timeout time.Duration) (*benchReader, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "role": "auditor", "merchants": []string{"*"}})
	code, answer, err := benchCall(ctx, client, http.MethodPost, base+"/v1/principals", admin, body, timeout)
	if err != nil {
		return nil, fmt.Errorf("failed to create the bench's auditor: %w", err)
	}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return nil, hinted{fmt.Errorf("failed to create the bench's auditor: the server answered %d (%s)", code, errorCode(answer)),
			[]string{"--token must be an admin token for every merchant, such as the one 'paytrail serve' prints on its first run"}}
	case code != http.StatusCreated:
		return nil, fmt.Errorf("failed to create the bench's auditor: the server answered %d (%s)", code, errorCode(answer))
	}
	var r benchReader
	if err := json.Unmarshal(answer, &r); err != nil || r.ID == "" || r.Token == "" {
		return nil, errors.New("failed to create the bench's auditor: the answer holds no principal id and token")
	}
	return &r, nil
}

// revokeBenchReader revokes the run's auditor.
func revokeBenchReader(ctx context.Context, client *http.Client, base, admin, id string) error {
	code, answer, err := benchCall(ctx, client, http.MethodDelete, base+"/v1/principals/"+url.PathEscape(id), admin, nil, 0)
	switch {
	case err != nil:
		return fmt.Errorf("failed to revoke the bench's auditor %s: %w", id, err)
	case code != http.StatusOK:
		return fmt.Errorf("failed to revoke the bench's auditor %s: the server answered %d (%s)", id, code, errorCode(answer))
	}
	return nil
}

// benchCall sends one request with a bearer token and returns the status
// and (up to benchQueryReadLimit of) the body. timeout 0 leaves ctx's.
func benchCall(ctx context.Context, client *http.Client, method, u, token string, body []byte, timeout time.Duration) (int, []byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "paytrail-bench")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, benchQueryReadLimit))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// queryBench is one read run: requests of each kind, interleaved, from
// concurrency workers.
type queryBench struct {
	base        string
	token       string // the run's auditor's
	requests    int
	concurrency int
	timeout     time.Duration
	merchants   []string
	cards       []benchCard
	client      *http.Client
	stderr      io.Writer

	pool *txPool
	// spans are, per merchant, the first_seen times its transactions
	// cover, learnt before the run (learnSpans); zero if it has none.
	spans []txSpan
}

// txSpan is the first_seen of a merchant's oldest and newest
// transactions.
type txSpan struct{ oldest, newest time.Time }

// queryStats is one worker's tally of one kind.
type queryStats struct {
	benchStats
	items int // transactions in the successful answers
	empty int // successful answers with none
}

func (s *queryStats) merge(o *queryStats) {
	s.benchStats.merge(&o.benchStats)
	s.items += o.items
	s.empty += o.empty
}

// queryResult is the outcome of a run.
type queryResult struct {
	sent    int
	elapsed time.Duration
	ops     [queryOps]queryStats
}

func (r *queryResult) failed() int {
	n := 0
	for i := range r.ops {
		n += r.ops[i].failed()
	}
	return n
}

// run sends the requests, a list, a view and a search in turn, and returns
// the tally. It stops early, without error, when ctx is done.
func (q *queryBench) run(ctx context.Context) *queryResult {
	q.pool = newTxPool()
	stop := context.AfterFunc(ctx, q.pool.stop)
	defer stop()
	if len(q.spans) != len(q.merchants) {
		q.spans = make([]txSpan, len(q.merchants))
	}

	rngs := make([]*rand.Rand, q.concurrency)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	stats, elapsed := runPool(ctx, q.stderr, "requests", 3*q.requests, q.concurrency,
		func(i int) queryJob { return queryJob{op: queryOp(i % 3), lists: i/3 + 1} },
		func(w int, job queryJob, st *[queryOps]queryStats) bool { return q.do(ctx, rngs[w], job, &st[job.op]) })

	res := &queryResult{elapsed: elapsed}
	for w := range stats {
		for op := range res.ops {
			res.ops[op].merge(&stats[w][op])
		}
	}
	for op := range res.ops {
		slices.Sort(res.ops[op].latencies)
		res.sent += len(res.ops[op].latencies)
		for _, c := range res.ops[op].errors {
			res.sent += c
		}
	}
	return res
}

// txSummary is what the bench reads of a transaction in an answer.
type txSummary struct {
	TransactionID string    `json:"transaction_id"`
	FirstSeen     time.Time `json:"first_seen"`
}

// queryJob is one request to make: a list, a view or a search, and how
// many list jobs were sent up to it.
type queryJob struct {
	op    queryOp
	lists int
}

// do sends one request, records its outcome in st and reports whether it
// succeeded.
func (q *queryBench) do(ctx context.Context, rng *rand.Rand, job queryJob, st *queryStats) bool {
	op := job.op
	var (
		method, u string
		body      []byte
		viewed    string
	)
	switch op {
	case opList:
		m := rng.IntN(len(q.merchants))
		v := url.Values{"merchant_id": {q.merchants[m]}, "limit": {strconv.Itoa(benchListLimit)}}
		if sp := q.spans[m]; !sp.oldest.IsZero() {
			// A random start between the merchant's oldest and newest
			// transactions, so that lists read all of the ledger, not its
			// first pages, and never start past its end.
			from := sp.oldest
			if d := sp.newest.Sub(sp.oldest); d > 0 {
				from = from.Add(time.Duration(rng.Int64N(int64(d))))
			}
			v.Set("from", from.UTC().Format(time.RFC3339Nano))
		}
		method, u = http.MethodGet, q.base+"/v1/transactions?"+v.Encode()
	case opView:
		id, ok := q.pool.pick(rng, job.lists)
		if !ok {
			if ctx.Err() != nil {
				st.fail("canceled", "interrupted")
			} else {
				st.fail("no_ids", "no list answer held a transaction (are --merchants those of the ingest runs?)")
			}
			return false
		}
		viewed = id
		method, u = http.MethodGet, q.base+"/v1/transactions/"+url.PathEscape(id)
	case opSearch:
		card := &q.cards[rng.IntN(len(q.cards))]
		body, _ = json.Marshal(map[string]string{"pan": card.pan})
		method, u = http.MethodPost, q.base+"/v1/cards/search"
	}

	var ids []string
	if op == opList {
		// However the list ends, the views waiting for ids are told.
		defer func() { q.pool.listDone(ids) }()
	}
	start := time.Now()
	code, answer, err := benchCall(ctx, q.client, method, u, q.token, body, q.timeout)
	lat := time.Since(start)
	if err != nil {
		// Transport errors name the URL at most, never the body (the PAN).
		st.failTransport(ctx, err, q.timeout)
		return false
	}
	if code/100 != 2 {
		st.fail(strconv.Itoa(code), errorCode(answer))
		return false
	}
	var items []txSummary
	switch op {
	case opList, opSearch:
		var a struct {
			Items *[]txSummary `json:"items"`
		}
		if json.Unmarshal(answer, &a) != nil || a.Items == nil {
			st.fail("bad_answer", "no items in the answer")
			return false
		}
		items = *a.Items
	case opView:
		var a txSummary
		if json.Unmarshal(answer, &a) != nil || a.TransactionID != viewed {
			st.fail("bad_answer", "the answer is not the transaction asked for")
			return false
		}
		items = []txSummary{a}
	}
	if op == opList {
		for _, it := range items {
			ids = append(ids, it.TransactionID)
		}
	}
	st.latencies = append(st.latencies, lat)
	st.items += len(items)
	if len(items) == 0 {
		st.empty++
	}
	return true
}

// learnSpans learns, before the timed run, the span of each merchant's
// transactions: the oldest from a list without from, the newest by
// bisecting from with one-item lists. Lists then start within it, also on
// a ledger filled long before the run (starting anywhere up to now, most
// lists of a ledger filled hours before answered nothing). It returns
// the lists it sent. A merchant whose span it could not learn is listed
// from its start; a failure is reported, not fatal.
func (q *queryBench) learnSpans(ctx context.Context) int {
	q.spans = make([]txSpan, len(q.merchants))
	sent := 0
	for m, merchant := range q.merchants {
		first := func(from time.Time) (time.Time, bool, error) {
			sent++
			return q.firstFrom(ctx, merchant, from)
		}
		oldest, ok, err := first(time.Time{})
		if err == nil && ok {
			var newest time.Time
			newest, err = bisectNewest(oldest, time.Now().Add(time.Hour), first)
			if err == nil {
				q.spans[m] = txSpan{oldest, newest}
			}
		}
		if ctx.Err() != nil {
			break // the run that follows stops at once too
		}
		if err != nil {
			fmt.Fprintf(q.stderr, "paytrail: warning: bench: lists of %s start at its oldest transaction: %s\n", merchant, err)
		}
	}
	return sent
}

// bisectNewest returns the first_seen of the newest transaction, given
// that of one (lo) and first, which answers the first_seen of the oldest
// transaction at or after from. hi is a guess past the newest; if
// transactions start at or after it (events dated in the future), the
// search goes on up to the largest time a list accepts.
func bisectNewest(lo, hi time.Time, first func(from time.Time) (time.Time, bool, error)) (time.Time, error) {
	t, ok, err := first(hi)
	if err != nil {
		return time.Time{}, err
	}
	if ok {
		lo, hi = t, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	// Invariant: a transaction starts at lo, none at or after hi.
	for hi.Sub(lo) > time.Nanosecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		t, ok, err := first(mid)
		switch {
		case err != nil:
			return time.Time{}, err
		case !ok:
			hi = mid
		case t.Before(mid) || !t.Before(hi):
			return time.Time{}, fmt.Errorf("a list from %s answered a transaction first seen at %s", mid.Format(time.RFC3339Nano), t.Format(time.RFC3339Nano))
		default:
			lo = t
		}
	}
	return lo, nil
}

// firstFrom returns the first_seen of a merchant's oldest transaction at
// or after from (zero: any), and false if there is none.
func (q *queryBench) firstFrom(ctx context.Context, merchant string, from time.Time) (time.Time, bool, error) {
	v := url.Values{"merchant_id": {merchant}, "limit": {"1"}}
	if !from.IsZero() {
		v.Set("from", from.UTC().Format(time.RFC3339Nano))
	}
	code, answer, err := benchCall(ctx, q.client, http.MethodGet, q.base+"/v1/transactions?"+v.Encode(), q.token, nil, q.timeout)
	switch {
	case err != nil:
		return time.Time{}, false, err
	case code != http.StatusOK:
		return time.Time{}, false, fmt.Errorf("a list answered %d (%s)", code, errorCode(answer))
	}
	var a struct {
		Items []txSummary `json:"items"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return time.Time{}, false, errors.New("a list answer does not decode")
	}
	if len(a.Items) == 0 {
		return time.Time{}, false, nil
	}
	if a.Items[0].FirstSeen.IsZero() {
		return time.Time{}, false, errors.New("a list answer has no first_seen")
	}
	return a.Items[0].FirstSeen, true, nil
}

// txPool holds transaction ids from list answers for the view requests.
type txPool struct {
	mu      sync.Mutex
	cond    *sync.Cond
	ids     []string
	lists   int // list requests done (answered or failed)
	stopped bool
}

func newTxPool() *txPool {
	p := &txPool{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// listDone adds a list answer's ids and wakes the views waiting for one.
func (p *txPool) listDone(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lists++
	for _, id := range ids {
		if len(p.ids) < benchPoolSize {
			p.ids = append(p.ids, id)
		} else {
			p.ids[rand.IntN(len(p.ids))] = id
		}
	}
	p.cond.Broadcast()
}

// pick returns a random id. While the pool is empty it waits until the
// first lists list requests are done: those queued before the view, which
// workers took first and run without waiting, so the wait always ends. If
// they held no transaction, or once stopped, it reports false.
func (p *txPool) pick(rng *rand.Rand, lists int) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.ids) == 0 && p.lists < lists && !p.stopped {
		p.cond.Wait()
	}
	if len(p.ids) == 0 || p.stopped {
		return "", false
	}
	return p.ids[rng.IntN(len(p.ids))], true
}

// stop wakes every waiting pick for good.
func (p *txPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// print writes the human summary and, last, one line per kind for
// scripts:
//
//	result op=list|view|search requests=N ok=N errors=N p50_ms=… p95_ms=… p99_ms=… max_ms=…
//
// requests counts requests sent and the latency percentiles are over the
// successful ones.
func (r *queryResult) print(w io.Writer) {
	secs := r.elapsed.Seconds()
	ok := 0
	for i := range r.ops {
		ok += len(r.ops[i].latencies)
	}
	rate := 0.0
	if secs > 0 {
		rate = float64(ok) / secs
	}
	fmt.Fprintf(w, "sent %d requests in %.2fs: %d ok, %d failed; %.1f requests/s\n", r.sent, secs, ok, r.failed(), rate)
	for op := range queryOps {
		s := &r.ops[op]
		n := len(s.latencies)
		sent := n + s.failed()
		perAnswer := 0.0
		if n > 0 {
			perAnswer = float64(s.items) / float64(n)
		}
		fmt.Fprintf(w, "%-6s %d requests: %d ok, %d failed", op, sent, n, sent-n)
		switch op {
		case opList:
			fmt.Fprintf(w, "; %.1f transactions per answer, empty answers: %d", perAnswer, s.empty)
		case opSearch:
			fmt.Fprintf(w, "; %d cards found transactions (%.1f per answer), %d none", n-s.empty, perAnswer, s.empty)
		}
		fmt.Fprintln(w)
		p50, p95, p99, maxLat := s.percentiles()
		fmt.Fprintf(w, "       latency p50 %.1fms  p95 %.1fms  p99 %.1fms  max %.1fms\n", ms(p50), ms(p95), ms(p99), ms(maxLat))
		s.printErrors(w, "       ")
	}
	for op := range queryOps {
		s := &r.ops[op]
		n, failed := len(s.latencies), s.failed()
		p50, p95, p99, maxLat := s.percentiles()
		fmt.Fprintf(w, "result op=%s requests=%d ok=%d errors=%d p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
			op, n+failed, n, failed, ms(p50), ms(p95), ms(p99), ms(maxLat))
	}
}
