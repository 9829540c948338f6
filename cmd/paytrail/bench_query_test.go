package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchServer is `paytrail serve` (plain HTTP, development keys) running
// in-process, with its first-run credentials (read with main_test.go's
// listeningRe, adminTokenRe and devSecretRe).
type benchServer struct {
	url, admin, secret string
}

func startBenchServer(t *testing.T) *benchServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, env{args: []string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0"},
			getenv: noEnv, stdout: stdout, stderr: stderr})
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(scriptTimeout)
	for {
		out := stdout.String()
		if m := listeningRe.FindStringSubmatch(out); m != nil {
			a, s := adminTokenRe.FindStringSubmatch(out), devSecretRe.FindStringSubmatch(out)
			if a == nil || s == nil {
				t.Fatalf("serve printed no first-run credentials:\n%s", out)
			}
			return &benchServer{url: m[1], admin: a[1], secret: s[1]}
		}
		select {
		case c := <-done:
			done <- c
			t.Fatalf("serve exited with %d\nstderr:\n%s", c, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within %s\nstderr:\n%s", scriptTimeout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readProxy stands between bench query and the real server and records
// what went through: the ids each list answered, the views and whether
// their id had been listed before, each search's item count. It can make
// every failEvery-th search answer 503 without asking the server.
type readProxy struct {
	mu                 sync.Mutex
	listed             map[string]bool
	lists, views       int
	unlisted           []string // viewed before any list answered them
	searchItems        []int
	failEvery, searchN int
	// Lists with a from parameter (the run's, not the one-item lists
	// that learn each merchant's span), and those that answered nothing.
	fromLists, emptyFromLists int
}

func newReadProxy(t *testing.T, target string, p *readProxy) (*httptest.Server, *readProxy) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		isList := r.Method == http.MethodGet && r.URL.Path == "/v1/transactions"
		isSearch := r.Method == http.MethodPost && r.URL.Path == "/v1/cards/search"
		if !isList && !isSearch {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		var a struct {
			Items []struct {
				ID string `json:"transaction_id"`
			} `json:"items"`
		}
		json.Unmarshal(b, &a)
		p.mu.Lock()
		defer p.mu.Unlock()
		if isSearch {
			p.searchItems = append(p.searchItems, len(a.Items))
			return nil
		}
		if r.URL.Query().Get("limit") == "1" {
			return nil // learning a merchant's span, before the run
		}
		p.lists++
		if r.URL.Query().Has("from") {
			p.fromLists++
			if len(a.Items) == 0 {
				p.emptyFromLists++
			}
		}
		for _, it := range a.Items {
			p.listed[it.ID] = true
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/v1/transactions/"); ok && r.Method == http.MethodGet {
			p.mu.Lock()
			p.views++
			if !p.listed[id] {
				p.unlisted = append(p.unlisted, id)
			}
			p.mu.Unlock()
		}
		if r.URL.Path == "/v1/cards/search" {
			p.mu.Lock()
			p.searchN++
			fail := p.failEvery > 0 && p.searchN%p.failEvery == 0
			p.mu.Unlock()
			if fail {
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":{"code":"unavailable","message":"try later"}}`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, p
}

func runBench(t *testing.T, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), env{args: append([]string{"bench"}, args...), getenv: getenv, stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

// panRe finds runs of 13 to 19 digits, spaced or not: what a printed card
// number looks like.
var panRe = regexp.MustCompile(`\d(?:[ -]?\d){12,18}`)

// TestBenchQuery posts bench events to a real server, then reads them with
// bench query through a recording proxy: every kind is answered, views ask
// for ids that lists answered, searches find the bench's cards, the
// auditor it made is revoked, and no card number is printed.
func TestBenchQuery(t *testing.T) {
	s := startBenchServer(t)
	const cards, merchants = "10", "3"

	// Before any event: lists hold nothing, so views fail (and do not wait
	// for ever), and searches find nothing.
	code, stdout, stderr := runBench(t, noEnv, "query", "--url", s.url, "--token", s.admin, "--requests", "6", "--concurrency", "2", "--cards", cards, "--merchants", merchants)
	if code != exitFailure {
		t.Fatalf("empty ledger: exit %d, want %d\n%s%s", code, exitFailure, stdout, stderr)
	}
	for _, re := range []string{
		`(?m)^result op=list requests=6 ok=6 errors=0 `,
		`(?m)^result op=view requests=6 ok=0 errors=6 `,
		`(?m)^result op=search requests=6 ok=6 errors=0 `,
		`(?m)^ +no_ids +6  \(first: no list answer held a transaction`,
		`(?m)^search 6 requests: 6 ok, 0 failed; 0 cards found transactions`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("empty ledger: stdout lacks %s:\n%s", re, stdout)
		}
	}

	if code, stdout, stderr := runBench(t, noEnv, "ingest", "--url", s.url, "--secret", s.secret, "--events", "400", "--concurrency", "4", "--cards", cards, "--merchants", merchants); code != 0 {
		t.Fatalf("bench ingest: exit %d\n%s%s", code, stdout, stderr)
	}

	proxy, p := newReadProxy(t, s.url, &readProxy{listed: map[string]bool{}})
	// The token from the environment this time.
	getenv := func(k string) string {
		if k == "PAYTRAIL_BENCH_TOKEN" {
			return s.admin
		}
		return ""
	}
	code, stdout, stderr = runBench(t, getenv, "query", "--url", proxy.URL, "--requests", "60", "--concurrency", "4", "--cards", cards, "--merchants", merchants)
	if code != 0 {
		t.Fatalf("bench query: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, op := range []string{"list", "view", "search"} {
		re := `(?m)^result op=` + op + ` requests=60 ok=60 errors=0 p50_ms=[0-9.]+ p95_ms=[0-9.]+ p99_ms=[0-9.]+ max_ms=[0-9.]+$`
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("stdout lacks %s:\n%s", re, stdout)
		}
	}
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-3], "result op=list ") {
		t.Errorf("the last three lines are not the result lines:\n%s", stdout)
	}
	p.mu.Lock()
	if p.lists != 60 || p.views != 60 || len(p.searchItems) != 60 {
		t.Errorf("the server saw %d lists, %d views, %d searches; want 60 each", p.lists, p.views, len(p.searchItems))
	}
	if len(p.unlisted) > 0 {
		t.Errorf("%d views of ids no list had answered yet, e.g. %q", len(p.unlisted), p.unlisted[0])
	}
	found := 0
	for _, n := range p.searchItems {
		if n > 0 {
			found++
		}
	}
	p.mu.Unlock()
	// 400 events make about 160 transactions over 10 cards: every card
	// has some.
	if found < 54 {
		t.Errorf("%d of 60 searches found transactions, want most", found)
	}
	if m := regexp.MustCompile(`(?m)^search 60 requests: 60 ok, 0 failed; (\d+) cards found transactions`).FindStringSubmatch(stdout); m == nil || m[1] != strconv.Itoa(found) {
		t.Errorf("the summary does not say %d searches found transactions:\n%s", found, stdout)
	}

	// No card number, whole or spaced, in anything bench query printed.
	n, _ := strconv.Atoi(cards)
	gen := newBenchGen(rand.New(rand.NewPCG(1, 2)), "x", "standard", 1, n, time.Now)
	for _, c := range gen.cards {
		for _, pan := range []string{c.pan, spacedPAN(c.pan)} {
			if strings.Contains(stdout+stderr, pan) {
				t.Errorf("the output holds a bench PAN")
			}
		}
	}
	if m := panRe.FindString(stdout + stderr); m != "" {
		t.Errorf("the output holds a card-number-like run of digits %q", m)
	}

	// Both runs' auditors are revoked.
	var ps struct {
		Items []struct {
			Name    string `json:"name"`
			Role    string `json:"role"`
			Revoked string `json:"revoked"`
		} `json:"items"`
	}
	if err := getJSON(s.url+"/v1/principals", s.admin, &ps); err != nil {
		t.Fatal(err)
	}
	readers := 0
	for _, pr := range ps.Items {
		if strings.HasPrefix(pr.Name, "bench query ") {
			readers++
			if pr.Role != "auditor" || pr.Revoked == "" {
				t.Errorf("bench principal %q: role %s, revoked %q", pr.Name, pr.Role, pr.Revoked)
			}
		}
	}
	if readers != 2 {
		t.Errorf("%d bench query principals, want 2: %+v", readers, ps.Items)
	}
}

// TestBenchQueryListsWithinTheLedger: on a ledger whose transactions are
// a year old, lists start between each merchant's oldest and newest
// transactions, so every one answers some (starting anywhere up to now,
// nearly all answered nothing).
func TestBenchQueryListsWithinTheLedger(t *testing.T) {
	s := startBenchServer(t)
	yearAgo := time.Now().AddDate(-1, 0, 0)
	gen := newBenchGen(rand.New(rand.NewPCG(3, 4)), "old", "standard", 3, 10, func() time.Time { return yearAgo })
	sign, err := newBenchSigner("standard", s.secret)
	if err != nil {
		t.Fatal(err)
	}
	for range 120 {
		ev := gen.next()
		req, err := http.NewRequest(http.MethodPost, s.url+"/v1/webhooks/dev", bytes.NewReader(ev.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		sign.sign(req.Header, ev.id, time.Now(), ev.body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
			t.Fatalf("posting a year-old event: %d", resp.StatusCode)
		}
	}

	proxy, p := newReadProxy(t, s.url, &readProxy{listed: map[string]bool{}})
	code, stdout, stderr := runBench(t, noEnv, "query", "--url", proxy.URL, "--token", s.admin, "--requests", "40", "--concurrency", "3", "--cards", "10", "--merchants", "3")
	if code != 0 {
		t.Fatalf("bench query: exit %d\n%s%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`(?m)^list +40 requests: 40 ok, 0 failed; [0-9.]+ transactions per answer, empty answers: 0$`).MatchString(stdout) {
		t.Errorf("stdout does not report 40 lists without an empty answer:\n%s", stdout)
	}
	if !regexp.MustCompile(`(?m)^paytrail: bench: learnt the span of each merchant's transactions with \d+ untimed one-item lists$`).MatchString(stderr) {
		t.Errorf("stderr does not say how it learnt the spans:\n%s", stderr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lists != 40 || p.fromLists != 40 || p.emptyFromLists != 0 {
		t.Errorf("the server saw %d lists, %d with from, %d of those empty; want 40, 40, 0", p.lists, p.fromLists, p.emptyFromLists)
	}
}

// TestBisectNewest: the newest transaction is found from any first one,
// also past the first guess (events dated in the future), and a server
// answering out of order is an error, not a loop.
func TestBisectNewest(t *testing.T) {
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		times []time.Duration // after base, ascending
		guess time.Duration
	}{
		{"one", []time.Duration{0}, time.Hour},
		{"spread", []time.Duration{0, time.Second, 90 * time.Second, 40 * time.Minute, 40*time.Minute + time.Nanosecond}, 24 * time.Hour},
		{"future", []time.Duration{0, time.Minute, 5 * 365 * 24 * time.Hour}, time.Hour},
		{"at the guess", []time.Duration{0, time.Hour}, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			first := func(from time.Time) (time.Time, bool, error) {
				calls++
				for _, d := range tc.times {
					if at := base.Add(d); !at.Before(from) {
						return at, true, nil
					}
				}
				return time.Time{}, false, nil
			}
			got, err := bisectNewest(base, base.Add(tc.guess), first)
			want := base.Add(tc.times[len(tc.times)-1])
			if err != nil || !got.Equal(want) {
				t.Errorf("bisectNewest = %s, %v; want %s", got, err, want)
			}
			if calls > 100 {
				t.Errorf("%d lists, want at most 100", calls)
			}
		})
	}
	_, err := bisectNewest(base, base.Add(time.Hour), func(from time.Time) (time.Time, bool, error) {
		return base, true, nil // before any from asked
	})
	if err == nil {
		t.Error("an answer before from was accepted")
	}
}

// TestBenchQueryCountsErrors: a non-2xx answer is an error of its kind,
// listed with its first code, and the exit code is 1.
func TestBenchQueryCountsErrors(t *testing.T) {
	s := startBenchServer(t)
	if code, stdout, stderr := runBench(t, noEnv, "ingest", "--url", s.url, "--secret", s.secret, "--events", "100", "--concurrency", "4", "--cards", "5", "--merchants", "2"); code != 0 {
		t.Fatalf("bench ingest: exit %d\n%s%s", code, stdout, stderr)
	}
	proxy, _ := newReadProxy(t, s.url, &readProxy{listed: map[string]bool{}, failEvery: 4})
	code, stdout, stderr := runBench(t, noEnv, "query", "--url", proxy.URL, "--token", s.admin, "--requests", "20", "--concurrency", "3", "--cards", "5", "--merchants", "2")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFailure, stdout, stderr)
	}
	for _, re := range []string{
		`(?m)^result op=list requests=20 ok=20 errors=0 `,
		`(?m)^result op=view requests=20 ok=20 errors=0 `,
		`(?m)^result op=search requests=20 ok=15 errors=5 `,
		`(?m)^ +503 +5  \(first: unavailable\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("stdout lacks %s:\n%s", re, stdout)
		}
	}
	if !strings.Contains(stderr, "paytrail: 5 of 60 requests failed\n") {
		t.Errorf("stderr does not count the failures:\n%s", stderr)
	}
}

// TestBenchQueryStopsOnCancel: an interrupted run stops, even with views
// waiting for a list that never answers, prints its summary and exits 1.
func TestBenchQueryStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case r.URL.Path == "/v1/principals" && r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"prn_0123456789abcdef","token":"ptk_reader"}`)
		case r.URL.Path == "/v1/transactions":
			// The first list hangs: every view waits for it.
			cancel()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			io.WriteString(w, `{"items":[]}`)
		}
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run(ctx, env{args: []string{"bench", "query", "--url", srv.URL, "--token", "ptk_admin", "--requests", "1000000", "--concurrency", "4"},
		getenv: noEnv, stdout: &stdout, stderr: &stderr})
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFailure, stdout.String(), stderr.String())
	}
	if !regexp.MustCompile(`(?m)^paytrail: interrupted after \d+ of 3000000 requests`).Match(stderr.Bytes()) {
		t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
	}
	if !regexp.MustCompile(`(?m)^result op=view requests=\d+ ok=0 `).Match(stdout.Bytes()) {
		t.Errorf("no view result line:\n%s", stdout.String())
	}
}

// TestBenchQueryUsage: bad invocations exit 2 before sending anything.
func TestBenchQueryUsage(t *testing.T) {
	const u = "http://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--token", "ptk_x"}, "paytrail: bench query needs --url\n"},
		{[]string{"--url", "ftp://127.0.0.1", "--token", "ptk_x"}, "paytrail: --url must be an http or https base URL"},
		{[]string{"--url", u}, "paytrail: bench query needs an admin token: --token or PAYTRAIL_BENCH_TOKEN\n"},
		{[]string{"--url", u, "--token", "ptk_x", "--requests", "0"}, "paytrail: --requests must be between 1 and 10000000\n"},
		{[]string{"--url", u, "--token", "ptk_x", "--requests", "many"}, `paytrail: invalid value "many" for flag -requests`},
		{[]string{"--url", u, "--token", "ptk_x", "--concurrency", "0"}, "paytrail: --concurrency must be between 1 and 4096\n"},
		{[]string{"--url", u, "--token", "ptk_x", "--cards", "1000001"}, "paytrail: --cards must be between 1 and 1000000\n"},
		{[]string{"--url", u, "--token", "ptk_x", "--merchants", "0"}, "paytrail: --merchants must be between 1 and 1000\n"},
		{[]string{"--url", u, "--token", "ptk_x", "--timeout", "0s"}, "paytrail: --timeout must be positive\n"},
		{[]string{"--url", u, "--token", "ptk_x", "extra"}, `paytrail: bench query takes no arguments, got "extra"`},
	} {
		code, stdout, stderr := runBench(t, noEnv, append([]string{"query"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
		if stdout != "" {
			t.Errorf("%q: stdout %q", tc.args, stdout)
		}
	}
	code, stdout, _ := runBench(t, noEnv, "query", "--help")
	if code != 0 || !strings.HasPrefix(stdout, "usage: paytrail bench query --url URL") || !strings.Contains(stdout, "-requests") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout)
	}
}
