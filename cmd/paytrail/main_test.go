package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rogpeppe/go-internal/testscript"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v85/webhook"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/paytrail/paytrail/api/webhook"
	"github.com/paytrail/paytrail/ledger/cluster/natstest"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// TestMain makes the test binary double as the paytrail command for the
// scripts in testdata/script: testscript installs it as "paytrail" on the
// scripts' PATH and runs it as a subprocess, so signals and exit codes are
// real.
func TestMain(m *testing.M) {
	natstest.Main()
	if os.Getenv(envAsMain) == "1" {
		os.Exit(scriptMain())
	}
	testscript.Main(m, map[string]func(){
		"paytrail": func() { os.Exit(scriptMain()) },
	})
}

// scriptMain is main with one test hook: when PAYTRAIL_TEST_STDOUT_COPY
// names a file, stdout is copied to it as it is written, so a script can
// read a background server's address and first-run credentials while it
// runs (testscript shows a background command's output only after it
// exits).
func scriptMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stdout := io.Writer(os.Stdout)
	if p := os.Getenv("PAYTRAIL_TEST_STDOUT_COPY"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintf(os.Stderr, "paytrail test hook: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		stdout = io.MultiWriter(os.Stdout, f)
	}
	return run(ctx, env{args: os.Args[1:], getenv: os.Getenv, stdout: stdout, stderr: os.Stderr, stdin: os.Stdin})
}

// TestScript runs the CLI scripts in testdata/script.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":        scriptExitCode,
			"capture":         scriptCapture,
			"waitserve":       scriptWaitServe,
			"waitcheckpoint":  scriptWaitCheckpoint,
			"sigterm":         scriptSigterm,
			"fetch":           scriptFetch,
			"dropcheckpoints": scriptDropCheckpoints,
			"tamper":          scriptTamper,
			"sub":             scriptSub,
			"forgekey":        scriptForgeKey,
			"perm":            scriptPerm,
			"nokeys":          scriptNoKeys,
			"listen":          scriptListen,
			"vkeys":           scriptVerifierKeys,
			"post":            scriptPost,
			"waitrewrap":      scriptWaitRewrap,
		},
	})
}

// scriptTimeout bounds the scripts' polling commands. It is a deadline for
// a hung server, not a speed assertion.
const scriptTimeout = 30 * time.Second

func noNeg(ts *testscript.TestScript, neg bool, name string) {
	if neg {
		ts.Fatalf("unsupported: ! %s", name)
	}
}

// exitcode N prog args...: runs prog and checks that it exits with N.
func scriptExitCode(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "exitcode")
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N prog [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// capture [-last] VAR REGEXP: sets VAR from the last command's stdout: the
// first submatch of REGEXP (or the whole match). With -last, REGEXP must
// match the whole last line of stdout.
func scriptCapture(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "capture")
	last := len(args) > 0 && args[0] == "-last"
	if last {
		args = args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: capture [-last] VAR REGEXP")
	}
	out := ts.ReadFile("stdout")
	expr := "(?m)" + args[1]
	if last {
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		out, expr = lines[len(lines)-1], "^(?:"+args[1]+")$"
	}
	m := regexp.MustCompile(expr).FindStringSubmatch(out)
	if m == nil {
		ts.Fatalf("no match for %q in stdout", expr)
	}
	ts.Setenv(args[0], m[len(m)-1])
}

var (
	listeningRe  = regexp.MustCompile(`listening on (https?://\S+)`)
	adminTokenRe = regexp.MustCompile(`admin token \(principal \S+\):\s+(ptk_\S+)`)
	devSecretRe  = regexp.MustCompile(`secret: (whsec_\S+)`)
)

// waitserve FILE: waits until the server whose stdout is copied to FILE
// listens, then sets URL and, after a first run, ADMIN_TOKEN and
// DEV_SECRET.
func scriptWaitServe(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitserve")
	if len(args) != 1 {
		ts.Fatalf("usage: waitserve FILE")
	}
	deadline := time.Now().Add(scriptTimeout)
	for {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		if m := listeningRe.FindSubmatch(b); m != nil {
			ts.Setenv("URL", string(m[1]))
			if m := adminTokenRe.FindSubmatch(b); m != nil {
				ts.Setenv("ADMIN_TOKEN", string(m[1]))
			}
			if m := devSecretRe.FindSubmatch(b); m != nil {
				ts.Setenv("DEV_SECRET", string(m[1]))
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("the server did not start listening within %s", scriptTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitcheckpoint URL TOKEN: waits until the server's latest checkpoint
// covers every entry it holds (checkpoints are signed about once a second).
func scriptWaitCheckpoint(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitcheckpoint")
	if len(args) != 2 {
		ts.Fatalf("usage: waitcheckpoint URL TOKEN")
	}
	deadline := time.Now().Add(scriptTimeout)
	for {
		var ready struct{ Entries uint64 }
		ts.Check(getJSON(args[0]+"/readyz", "", &ready))
		cp, err := httpGet(args[0]+"/v1/ledger/checkpoint", args[1])
		ts.Check(err)
		var c log.Checkpoint
		if _, err := c.Unmarshal(cp); err == nil && c.Size == ready.Entries {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no checkpoint of size %d within %s", ready.Entries, scriptTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sigterm: sends SIGTERM to every background command (testscript's kill
// sends only SIGINT or SIGKILL).
func scriptSigterm(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "sigterm")
	cmds := ts.BackgroundCmds()
	if len(cmds) == 0 {
		ts.Fatalf("no background command to signal")
	}
	for _, c := range cmds {
		ts.Check(c.Process.Signal(syscall.SIGTERM))
	}
}

// fetch URL: writes the body of a 200 answer to stdout.
func scriptFetch(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "fetch")
	if len(args) != 1 {
		ts.Fatalf("usage: fetch URL")
	}
	b, err := httpGet(args[0], "")
	ts.Check(err)
	ts.Stdout().Write(b)
}

func httpGet(url, token string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, err
}

func getJSON(url, token string, v any) error {
	b, err := httpGet(url, token)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func jsonMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// tamper DATADIR SEQ: flips one bit of the stored entry SEQ directly in the
// ledger's Pebble store, as an attacker with disk access would. The entry
// key is the ledger's (ledger/keys.go): 'e' then the sequence number, big
// endian. It changes the case of a letter near the middle, so the entry
// still decodes and only the hashes can tell.
func scriptTamper(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "tamper")
	if len(args) != 2 {
		ts.Fatalf("usage: tamper DATADIR SEQ")
	}
	seq, err := strconv.ParseUint(args[1], 10, 64)
	ts.Check(err)
	ts.Check(flipEntryBit(filepath.Join(ts.MkAbs(args[0]), "ledger"), seq, scriptLogger{ts}))
}

// dropcheckpoints DATADIR: deletes every stored checkpoint from the
// ledger's Pebble store, as an attacker with disk access would before
// rewriting entries. Checkpoint keys are the ledger's (ledger/keys.go):
// "aempty_checkpoint", and 'e', a big-endian sequence number and 'p'.
func scriptDropCheckpoints(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "dropcheckpoints")
	if len(args) != 1 {
		ts.Fatalf("usage: dropcheckpoints DATADIR")
	}
	db, err := pebble.Open(filepath.Join(ts.MkAbs(args[0]), "ledger"), &pebble.Options{Logger: scriptLogger{ts}})
	ts.Check(err)
	it, err := db.NewIter(nil)
	ts.Check(err)
	b := db.NewBatch()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if string(k) == "aempty_checkpoint" || len(k) == 10 && k[0] == 'e' && k[9] == 'p' {
			ts.Check(b.Delete(bytes.Clone(k), nil))
			n++
		}
	}
	ts.Check(it.Close())
	if n == 0 {
		ts.Fatalf("no checkpoint to drop")
	}
	ts.Check(b.Commit(pebble.Sync))
	ts.Check(db.Close())
}

// scriptLogger sends Pebble's messages to the script's log.
type scriptLogger struct{ ts *testscript.TestScript }

func (l scriptLogger) Infof(format string, args ...any)  { l.ts.Logf("pebble: "+format, args...) }
func (l scriptLogger) Errorf(format string, args ...any) { l.ts.Logf("pebble: "+format, args...) }
func (l scriptLogger) Fatalf(format string, args ...any) { l.ts.Fatalf("pebble: "+format, args...) }

func flipEntryBit(dir string, seq uint64, logger pebble.Logger) (err error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	key := binary.BigEndian.AppendUint64([]byte{'e'}, seq)
	v, closer, err := db.Get(key)
	if err != nil {
		return fmt.Errorf("entry %d: %w", seq, err)
	}
	entry := bytes.Clone(v)
	if err := closer.Close(); err != nil {
		return err
	}
	i := len(entry) / 2
	for i < len(entry) && !('a' <= entry[i] && entry[i] <= 'z' || 'A' <= entry[i] && entry[i] <= 'Z') {
		i++
	}
	if i == len(entry) {
		return fmt.Errorf("entry %d has no letter to flip", seq)
	}
	entry[i] ^= 0x20
	return db.Set(key, entry, pebble.Sync)
}

// sub FILE REGEXP REPLACEMENT: replaces every match in FILE; there must be
// at least one.
func scriptSub(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "sub")
	if len(args) != 3 {
		ts.Fatalf("usage: sub FILE REGEXP REPLACEMENT")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	re := regexp.MustCompile(args[1])
	if !re.Match(b) {
		ts.Fatalf("no match for %q in %s", args[1], args[0])
	}
	ts.Check(os.WriteFile(path, re.ReplaceAll(b, []byte(args[2])), 0o600))
}

// forgekey VKEYFILE OUT: writes to OUT a new verifier key with the same
// name as the one in VKEYFILE (the same origin, a different key).
func scriptForgeKey(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "forgekey")
	if len(args) != 2 {
		ts.Fatalf("usage: forgekey VKEYFILE OUT")
	}
	v, err := note.NewVerifier(strings.TrimSpace(ts.ReadFile(args[0])))
	ts.Check(err)
	_, vkey, err := note.GenerateKey(rand.Reader, v.Name())
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(vkey+"\n"), 0o600))
}

// perm FILE MODE: checks FILE's permission bits (octal).
func scriptPerm(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "perm")
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fi.Mode().Perm(); got != fs.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[0], got, want)
	}
}

// keyMaterialRe finds JSON string values that are base64 of 18 bytes or
// more: the master key and the encrypted keysets.
var keyMaterialRe = regexp.MustCompile(`"([A-Za-z0-9+/]{24,}={0,2})"`)

// nokeys DATADIR: checks that the last command's stdout and stderr contain
// no 16-character piece of the key material in the master key file or the
// keyset files.
func scriptNoKeys(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "nokeys")
	if len(args) != 1 {
		ts.Fatalf("usage: nokeys DATADIR")
	}
	dir := ts.MkAbs(args[0])
	files, err := filepath.Glob(filepath.Join(dir, "keysets", "*"))
	ts.Check(err)
	files = append(files, filepath.Join(dir, "master.key"))
	out := ts.ReadFile("stdout") + ts.ReadFile("stderr")
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		ts.Check(err)
		for _, m := range keyMaterialRe.FindAllSubmatch(b, -1) {
			for v := m[1]; len(v) >= 16; v = v[16:] {
				n++
				if strings.Contains(out, string(v[:16])) {
					ts.Fatalf("output contains key material from %s", filepath.Base(f))
				}
			}
		}
	}
	if n == 0 {
		ts.Fatalf("found no key material in %s to look for", dir)
	}
}

// listen VAR: listens on a free loopback port until the script ends and
// sets VAR to its address, for a command that must find the port busy.
func scriptListen(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "listen")
	if len(args) != 1 {
		ts.Fatalf("usage: listen VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Defer(func() { ln.Close() })
	ts.Setenv(args[0], ln.Addr().String())
}

// vkeys DATADIR FILE...: writes the checkpoint verifier keys of the data
// dir's signer keyset, primary first, one to each FILE (as GET
// /v1/ledger/public-keys serves them). The data dir must not be in use.
func scriptVerifierKeys(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "vkeys")
	if len(args) < 2 {
		ts.Fatalf("usage: vkeys DATADIR FILE...")
	}
	node, err := datadir.Open(context.Background(), datadir.Config{Dir: ts.MkAbs(args[0]), ReadOnly: true})
	ts.Check(err)
	defer node.Close()
	_, vkeys, err := node.Verifiers()
	ts.Check(err)
	if len(vkeys) != len(args)-1 {
		ts.Fatalf("the data dir has %d signer keys, want %d", len(vkeys), len(args)-1)
	}
	for i, k := range vkeys {
		ts.Check(os.WriteFile(ts.MkAbs(args[i+1]), []byte(k+"\n"), 0o600))
	}
}

func TestLuhnCheckDigit(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    byte
	}{
		{"411111111111111", '1'}, // 4111 1111 1111 1111
		{"555555555555444", '4'}, // 5555 5555 5555 4444
		{"37828224631000", '5'},  // 3782 822463 10005
		{"601111111111111", '7'}, // 6011 1111 1111 1117
		{"7992739871", '3'},      // the Luhn article's example
		{"0", '0'},
	} {
		if got := luhnCheckDigit(tc.payload); got != tc.want {
			t.Errorf("luhnCheckDigit(%q) = %c, want %c", tc.payload, got, tc.want)
		}
	}
}

// luhnValid is an independent check of a whole number.
func luhnValid(pan string) bool {
	sum, double := 0, false
	for i := len(pan) - 1; i >= 0; i-- {
		d := int(pan[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 4", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p95 of 100", ms(hundred...), 95, 95 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestWebhookEndpoint(t *testing.T) {
	for _, tc := range []struct {
		base, source, want string
		wantErr            bool
	}{
		{"http://127.0.0.1:8080", "dev", "http://127.0.0.1:8080/v1/webhooks/dev", false},
		{"http://127.0.0.1:8080/", "stripe", "http://127.0.0.1:8080/v1/webhooks/stripe", false},
		{"https://paytrail.example.com/base", "dev", "https://paytrail.example.com/base/v1/webhooks/dev", false},
		{"", "dev", "", true},
		{"ftp://127.0.0.1", "dev", "", true},
		{"127.0.0.1:8080", "dev", "", true},
		{"http://127.0.0.1:8080?x=1", "dev", "", true},
		{"http://127.0.0.1:8080", "a/b", "", true},
		{"http://127.0.0.1:8080", "", "", true},
	} {
		got, err := webhookEndpoint(tc.base, tc.source)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("webhookEndpoint(%q, %q) = %q, %v; want %q (error %v)", tc.base, tc.source, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestBenchSignatures checks bench's signing against the processors' own
// libraries, which are independent of both bench and api/webhook.
func TestBenchSignatures(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"payment.captured"}`)
	now := time.Now()

	const stdSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s, err := newBenchSigner("standard", stdSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	s.sign(h, "msg_1", now, body)
	wh, err := standardwebhooks.NewWebhook(stdSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("standard-webhooks rejects bench's signature: %v", err)
	}
	if err := wh.Verify([]byte(`{"id":"evt_2"}`), h); err == nil {
		t.Error("standard-webhooks accepts bench's signature for another body")
	}

	const stripeSecret = "whsec_test_stripe_endpoint_secret_0123456789"
	s, err = newBenchSigner("stripe", stripeSecret)
	if err != nil {
		t.Fatal(err)
	}
	h = http.Header{}
	s.sign(h, "evt_1", now, body)
	if err := stripewebhook.ValidatePayload(body, h.Get("Stripe-Signature"), stripeSecret); err != nil {
		t.Errorf("stripe-go rejects bench's signature: %v", err)
	}

	for _, tc := range []struct{ scheme, secret string }{
		{"standard", ""}, {"standard", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, {"standard", "whsec_!!!"},
		{"standard", "whsec_"}, {"stripe", ""}, {"paypal", "whsec_x"},
	} {
		_, err := newBenchSigner(tc.scheme, tc.secret)
		if err == nil {
			t.Errorf("newBenchSigner(%q, %q) accepted", tc.scheme, tc.secret)
		} else if tc.secret != "" && tc.secret != "whsec_" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("newBenchSigner error contains the secret: %v", err)
		}
	}
}

// TestBenchEvents checks the generator's variety and that every event is
// one the server's normalizers accept, with amounts in the currency's
// minor units.
func TestBenchEvents(t *testing.T) {
	exps := map[string]int{"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}
	for _, scheme := range []string{"standard", "stripe"} {
		t.Run(scheme, func(t *testing.T) {
			now := func() time.Time { return time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) }
			g := newBenchGen(mrand.New(mrand.NewPCG(1, 2)), "run1", scheme, 5, 50, now)
			types, merchants, currencies, pans, ids := map[string]int{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
			txEvents := map[string]int{}
			for range 2000 {
				ev := g.next()
				if ids[ev.id] {
					t.Fatalf("event id %s repeated", ev.id)
				}
				ids[ev.id] = true
				var e *webhook.Event
				var err error
				if scheme == "stripe" {
					e, err = webhook.NormalizeStripe(ev.body, "")
				} else {
					e, err = webhook.NormalizeGeneric(ev.body, "")
				}
				if err != nil {
					t.Fatalf("the server's normalizer rejects %s: %v", ev.body, err)
				}
				if e.EventID != ev.id {
					t.Fatalf("event id %q, want %q", e.EventID, ev.id)
				}
				types[string(e.Type)]++
				merchants[e.MerchantID] = true
				if e.Type == webhook.EventOpaque {
					continue // charge.expired: stored as is
				}
				currencies[e.Currency] = true
				txEvents[e.TransactionID]++
				exp, ok := exps[e.Currency]
				if !ok {
					t.Fatalf("unexpected currency %s", e.Currency)
				}
				// Amounts are minor units within the currency's major range.
				scale := int64(1)
				for range exp {
					scale *= 10
				}
				if e.Amount < 1 || e.Amount > 90000*scale {
					t.Fatalf("amount %d %s out of range", e.Amount, e.Currency)
				}
				if scheme == "standard" {
					pan := strings.ReplaceAll(e.Card.PAN, " ", "")
					if !luhnValid(pan) || len(pan) < 15 || len(pan) > 16 {
						t.Fatalf("generated card number fails the Luhn check or has a bad length")
					}
					pans[pan] = true
					if e.Cardholder.Email == "" || e.Cardholder.Name == "" {
						t.Fatal("no cardholder")
					}
				}
			}
			for _, typ := range []string{"payment.authorized", "payment.captured", "payment.refunded", "payment.failed", "payment.chargeback"} {
				if types[typ] == 0 {
					t.Errorf("no %s events in 2000: %v", typ, types)
				}
			}
			if len(merchants) != 5 || len(currencies) != 5 {
				t.Errorf("%d merchants and %d currencies, want 5 and 5", len(merchants), len(currencies))
			}
			if scheme == "standard" && (len(pans) < 30 || len(pans) > 50) {
				t.Errorf("%d distinct cards, want most of the 50", len(pans))
			}
			multi := 0
			for _, n := range txEvents {
				if n > 1 {
					multi++
				}
			}
			if multi < len(txEvents)/2 {
				t.Errorf("only %d of %d transactions have more than one event", multi, len(txEvents))
			}
		})
	}
}

// TestBenchCountsFailures runs bench in-process against a server that
// fails some requests: the summary counts them by status and the exit code
// is 1.
func TestBenchCountsFailures(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		fail := n%10 == 0
		mu.Unlock()
		if r.URL.Path != "/v1/webhooks/dev" || r.Header.Get("webhook-signature") == "" {
			http.Error(w, `{"error":{"code":"not_found","message":"x"}}`, http.StatusNotFound)
			return
		}
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":"unavailable","message":"try later"}}`)
			return
		}
		io.WriteString(w, `{"seq":1,"duplicate":false}`)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), env{
		args:   []string{"bench", "ingest", "--url", srv.URL, "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--events", "100", "--concurrency", "4"},
		getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr,
	})
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\n%s%s", code, exitFailure, stdout.String(), stderr.String())
	}
	if !regexp.MustCompile(`(?m)^  503 +10  \(first: unavailable\)$`).Match(stdout.Bytes()) {
		t.Errorf("no 503 count in the summary:\n%s", stdout.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^result events=100 ok=90 errors=10 seconds=[0-9.]+ events_per_s=[0-9.]+ p50_ms=[0-9.]+ p95_ms=[0-9.]+ p99_ms=[0-9.]+ max_ms=[0-9.]+$`).MatchString(last) {
		t.Errorf("the last line is not the result line: %q", last)
	}
}

// TestBenchStopsOnCancel cancels a long run (as SIGINT would): bench stops
// sending, prints its summary and exits 1.
func TestBenchStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 20 {
			cancel()
		}
		io.WriteString(w, `{"seq":1,"duplicate":false}`)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run(ctx, env{
		args:   []string{"bench", "ingest", "--url", srv.URL, "--secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "--events", "1000000", "--concurrency", "4"},
		getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr,
	})
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\n%s%s", code, exitFailure, stdout.String(), stderr.String())
	}
	if !regexp.MustCompile(`(?m)^paytrail: interrupted after \d+ of 1000000 events`).Match(stderr.Bytes()) {
		t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
	}
	if got := n.Load(); got > 100 {
		t.Errorf("%d requests after the cancel at 20", got)
	}
	if !regexp.MustCompile(`(?m)^result events=\d+ ok=\d+ `).Match(stdout.Bytes()) {
		t.Errorf("no result line:\n%s", stdout.String())
	}
}

// fakeLog is a transparency log server for the remote check: an in-memory
// RFC 6962 tree (the merkle module's reference implementation) whose
// checkpoints are signed with a note key.
type fakeLog struct {
	t      *testing.T
	mu     sync.Mutex
	origin string
	signer note.Signer
	vkey   string
	tree   *testonly.Tree
	// serve overrides the checkpoint served, when set.
	serve []byte
	// proofs counts consistency proof requests.
	proofs int
}

func newFakeLog(t *testing.T) *fakeLog {
	origin := "paytrail/0123456789abcdef"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeLog{t: t, origin: origin, signer: s, vkey: vkey, tree: testonly.New(rfc6962.DefaultHasher)}
}

// append adds n entries. Callers hold f.mu once the server runs.
func (f *fakeLog) append(n int) {
	for range n {
		f.tree.AppendData([]byte(fmt.Sprintf("entry %d", f.tree.Size())))
	}
}

// sign signs a checkpoint of size and root with the log's key.
func (f *fakeLog) sign(size uint64, root []byte) []byte {
	body := log.Checkpoint{Origin: f.origin, Size: size, Hash: root}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(body)}, f.signer)
	if err != nil {
		f.t.Fatal(err)
	}
	return msg
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer ptk_auditor" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"unauthenticated","message":"x"}}`)
		return
	}
	switch r.URL.Path {
	case "/v1/ledger/checkpoint":
		if f.serve != nil {
			w.Write(f.serve)
			return
		}
		w.Write(f.sign(f.tree.Size(), f.tree.Hash()))
	case "/v1/ledger/proofs/consistency":
		f.proofs++
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		p, err := f.tree.ConsistencyProof(from, to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"from":%d,"to":%d,"hashes":%s}`, from, to, jsonMarshal(p))
	default:
		http.NotFound(w, r)
	}
}

type remoteRun struct {
	code           int
	stdout, stderr string
}

func runVerifyRemote(t *testing.T, url, file, key string, extra ...string) remoteRun {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := append([]string{"verify", "--url", url, "--checkpoint", file, "--key", key}, extra...)
	code := run(context.Background(), env{args: args, getenv: func(k string) string {
		if k == "PAYTRAIL_TOKEN" {
			return "ptk_auditor"
		}
		return ""
	}, stdout: &stdout, stderr: &stderr})
	return remoteRun{code, stdout.String(), stderr.String()}
}

func TestVerifyRemote(t *testing.T) {
	// Each case starts from a log of 5 entries whose checkpoint was trusted
	// on first use, then changes the log and runs the check again.
	for _, tc := range []struct {
		name     string
		change   func(f *fakeLog)
		key      func(f *fakeLog, dir string) string // default: the log's key
		saved    func(f *fakeLog, b []byte) []byte   // edits the saved file
		wantCode int
		wantOut  string
		replaced bool
	}{
		{name: "grew", change: func(f *fakeLog) { f.append(7) }, wantCode: 0, wantOut: `(?m)^OK: paytrail/0123456789abcdef grew consistently from size 5 to 12, root `, replaced: true},
		{name: "grew by one", change: func(f *fakeLog) { f.append(1) }, wantCode: 0, wantOut: `from size 5 to 6`, replaced: true},
		{name: "unchanged", change: func(f *fakeLog) {}, wantCode: 0, wantOut: `(?m)^OK: paytrail/0123456789abcdef unchanged at size 5`},
		{name: "key from a file", change: func(f *fakeLog) { f.append(3) }, key: func(f *fakeLog, dir string) string {
			p := filepath.Join(dir, "vkey")
			os.WriteFile(p, []byte(f.vkey+"\n"), 0o600)
			return p
		}, wantCode: 0, wantOut: `from size 5 to 8`, replaced: true},
		{name: "shrank", change: func(f *fakeLog) { f.serve = f.sign(3, f.tree.HashAt(3)) }, wantCode: 1, wantOut: `(?m)^FAIL: the server's tree shrank from size 5 to 3$`},
		{name: "split view", change: func(f *fakeLog) {
			fork := testonly.New(rfc6962.DefaultHasher)
			fork.AppendData([]byte("another history"), []byte("b"), []byte("c"), []byte("d"), []byte("e"))
			f.serve = f.sign(5, fork.Hash())
		}, wantCode: 1, wantOut: `(?m)^FAIL: two signed checkpoints of size 5 have different roots`},
		{name: "rewritten history", change: func(f *fakeLog) {
			f.tree = testonly.New(rfc6962.DefaultHasher)
			f.tree.AppendData([]byte("rewritten"))
			f.append(9)
		}, wantCode: 1, wantOut: `(?m)^FAIL: the consistency proof from size 5 to 10 does not verify`},
		{name: "wrong key", change: func(f *fakeLog) { f.append(2) }, key: func(f *fakeLog, dir string) string {
			_, vkey, _ := note.GenerateKey(rand.Reader, f.origin)
			return vkey
		}, wantCode: 1, wantOut: `(?m)^FAIL: the server's checkpoint does not verify with the pinned key`},
		{name: "key of another ledger", change: func(f *fakeLog) {}, key: func(f *fakeLog, dir string) string {
			_, vkey, _ := note.GenerateKey(rand.Reader, "paytrail/fedcba9876543210")
			return vkey
		}, wantCode: 1, wantOut: `does not verify with the pinned key`},
		{name: "tampered saved checkpoint", change: func(f *fakeLog) { f.append(2) }, saved: func(f *fakeLog, b []byte) []byte {
			return bytes.Replace(b, []byte("\n5\n"), []byte("\n4\n"), 1)
		}, wantCode: 1, wantOut: `(?m)^FAIL: the saved checkpoint .* does not verify with the pinned key`},
		{name: "saved checkpoint of another log", change: func(f *fakeLog) { f.append(2) }, saved: func(f *fakeLog, b []byte) []byte {
			other := newFakeLog(f.t)
			other.append(5)
			return other.sign(5, other.tree.Hash())
		}, wantCode: 1, wantOut: `does not verify with the pinned key`},
		{name: "server answers garbage", change: func(f *fakeLog) { f.serve = []byte("not a note") }, wantCode: 1, wantOut: `(?m)^FAIL: the server's checkpoint`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLog(t)
			f.append(5)
			srv := httptest.NewServer(f)
			defer srv.Close()
			dir := t.TempDir()
			file := filepath.Join(dir, "checkpoint")

			r := runVerifyRemote(t, srv.URL, file, f.vkey)
			if r.code != 0 || !strings.Contains(r.stdout, "trusted first checkpoint of paytrail/0123456789abcdef: size 5") {
				t.Fatalf("first use: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			fi, err := os.Stat(file)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("checkpoint file: %v, mode %v; want mode 0600", err, fi.Mode())
			}
			first, _ := os.ReadFile(file)
			if tc.saved != nil {
				first = tc.saved(f, first)
				os.WriteFile(file, first, 0o600)
			}

			f.mu.Lock()
			tc.change(f)
			f.mu.Unlock()
			key := f.vkey
			if tc.key != nil {
				key = tc.key(f, dir)
			}
			r = runVerifyRemote(t, srv.URL, file, key)
			if r.code != tc.wantCode || !regexp.MustCompile(tc.wantOut).MatchString(r.stdout) {
				t.Fatalf("exit %d, want %d; stdout must match %q\nstdout:\n%sstderr:\n%s", r.code, tc.wantCode, tc.wantOut, r.stdout, r.stderr)
			}
			if tc.wantCode != 0 {
				if r.stderr != "paytrail: remote ledger check failed\n" {
					t.Errorf("stderr = %q, want only that the check failed", r.stderr)
				}
				// The reason is printed once, on one FAIL line.
				fail := regexp.MustCompile(`(?m)^FAIL: (.*)$`).FindAllStringSubmatch(r.stdout, -1)
				if len(fail) != 1 || strings.Count(r.stdout+r.stderr, fail[0][1]) != 1 {
					t.Errorf("want one FAIL line whose reason appears once:\nstdout:\n%sstderr:\n%s", r.stdout, r.stderr)
				}
			}
			now, _ := os.ReadFile(file)
			if replaced := !bytes.Equal(now, first); replaced != tc.replaced {
				t.Errorf("file replaced = %v, want %v", replaced, tc.replaced)
			}
			if tc.replaced {
				// The file now holds the server's latest checkpoint.
				v, _ := note.NewVerifier(f.vkey)
				cp, err := openCheckpoint(now, v)
				if err != nil || cp.Size != f.tree.Size() {
					t.Errorf("saved checkpoint: %v, %+v; want size %d", err, cp, f.tree.Size())
				}
			}
			matches, _ := filepath.Glob(filepath.Join(dir, ".checkpoint.tmp-*"))
			if len(matches) != 0 {
				t.Errorf("temporary files left behind: %v", matches)
			}
		})
	}
}

// TestVerifyRemoteFromEmpty trusts the checkpoint of an empty ledger, then
// accepts any growth without a proof (every tree extends the empty one).
func TestVerifyRemoteFromEmpty(t *testing.T) {
	f := newFakeLog(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "cp")
	if r := runVerifyRemote(t, srv.URL, file, f.vkey); r.code != 0 || !strings.Contains(r.stdout, "size 0") {
		t.Fatalf("first use: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	f.mu.Lock()
	f.append(3)
	f.mu.Unlock()
	if r := runVerifyRemote(t, srv.URL, file, f.vkey); r.code != 0 || !strings.Contains(r.stdout, "from size 0 to 3") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.proofs != 0 {
		t.Errorf("%d proofs fetched, want none from size 0", f.proofs)
	}
}

func TestVerifyRemoteUsageAndIO(t *testing.T) {
	f := newFakeLog(t)
	f.append(2)
	srv := httptest.NewServer(f)
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "cp")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no checkpoint flag", []string{"verify", "--url", srv.URL, "--key", f.vkey}, "paytrail: verify --url needs --checkpoint FILE and --key VKEY"},
		{"no key flag", []string{"verify", "--url", srv.URL, "--checkpoint", file}, "paytrail: verify --url needs --checkpoint FILE and --key VKEY"},
		{"not a key", []string{"verify", "--url", srv.URL, "--checkpoint", file, "--key", "nonsense"}, "paytrail: --key is neither a verifier key nor a file holding one"},
		{"two keys", []string{"verify", "--url", srv.URL, "--checkpoint", file, "--key", f.vkey, "--key", f.vkey}, "paytrail: verify --url takes one --key"},
		{"bad url", []string{"verify", "--url", "ftp://x", "--checkpoint", file, "--key", f.vkey}, "paytrail: --url must be an http or https base URL"},
		{"no token", []string{"verify", "--url", srv.URL, "--checkpoint", file, "--key", f.vkey, "--token", "ptk_wrong"}, "paytrail: failed to fetch /v1/ledger/checkpoint: the server answered 401"},
		{"nothing listening", []string{"verify", "--url", "http://127.0.0.1:1", "--checkpoint", file, "--key", f.vkey}, "paytrail: failed to fetch /v1/ledger/checkpoint: "},
		{"unwritable file", []string{"verify", "--url", srv.URL, "--checkpoint", filepath.Join(dir, "missing", "cp"), "--key", f.vkey}, "paytrail: failed to write checkpoint file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), env{args: tc.args, getenv: func(k string) string {
				if k == "PAYTRAIL_TOKEN" {
					return "ptk_auditor"
				}
				return ""
			}, stdout: &stdout, stderr: &stderr})
			if code != exitUsage || !strings.HasPrefix(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), exitUsage, tc.wantErr)
			}
			if _, err := os.Stat(file); err == nil {
				t.Errorf("a failed run wrote the checkpoint file")
			}
		})
	}
}

func TestParseConsistency(t *testing.T) {
	h := bytes.Repeat([]byte{1}, 32)
	for _, tc := range []struct {
		name     string
		body     string
		from, to uint64
		want     int
		wantErr  bool
	}{
		{"ok", fmt.Sprintf(`{"from":2,"to":5,"hashes":%s}`, jsonMarshal([][]byte{h, h})), 2, 5, 2, false},
		{"extra fields are fine", fmt.Sprintf(`{"from":2,"to":5,"hashes":%s,"note":"x"}`, jsonMarshal([][]byte{h})), 2, 5, 1, false},
		{"other sizes", fmt.Sprintf(`{"from":1,"to":5,"hashes":%s}`, jsonMarshal([][]byte{h})), 2, 5, 0, true},
		{"no sizes", `{"hashes":[]}`, 2, 5, 0, true},
		{"short hash", `{"from":2,"to":5,"hashes":["AAAA"]}`, 2, 5, 0, true},
		{"not base64", `{"from":2,"to":5,"hashes":["!!"]}`, 2, 5, 0, true},
		{"not json", `<html>`, 2, 5, 0, true},
		{"too many", fmt.Sprintf(`{"from":2,"to":5,"hashes":%s}`, jsonMarshal(slicesRepeat(h, 129))), 2, 5, 0, true},
	} {
		got, err := parseConsistency([]byte(tc.body), tc.from, tc.to)
		if (err != nil) != tc.wantErr || len(got) != tc.want {
			t.Errorf("%s: got %d hashes, err %v; want %d, error %v", tc.name, len(got), err, tc.want, tc.wantErr)
		}
	}
}

func slicesRepeat(h []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = h
	}
	return out
}

// FuzzOpenCheckpoint checks that no input panics the checkpoint parser and
// that it accepts only notes signed by the pinned key, for its origin.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "paytrail/0123456789abcdef")
	if err != nil {
		f.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	good, _ := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: v.Name(), Size: 7, Hash: bytes.Repeat([]byte{7}, 32)}.Marshal())}, s)
	short, _ := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: v.Name(), Size: 7, Hash: []byte{7}}.Marshal())}, s)
	other, _ := note.Sign(&note.Note{Text: "paytrail/other\n7\nBwcH\n"}, s)
	for _, seed := range [][]byte{good, short, other, []byte(""), []byte("paytrail/x\n1\n\n\n— x y\n"), bytes.Replace(good, []byte("\n7\n"), []byte("\n8\n"), 1)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := openCheckpoint(msg, v)
		if err != nil {
			return
		}
		if cp.Origin != v.Name() || len(cp.Hash) != 32 {
			t.Fatalf("accepted %+v", cp)
		}
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil || len(n.Sigs) == 0 {
			t.Fatalf("accepted a note that note.Open rejects: %v", err)
		}
	})
}

// FuzzParseConsistency checks that no answer panics the proof parser and
// that what it accepts is a bounded list of 32-byte hashes.
func FuzzParseConsistency(f *testing.F) {
	h := bytes.Repeat([]byte{9}, 32)
	f.Add(fmt.Sprintf(`{"from":2,"to":5,"hashes":%s}`, jsonMarshal([][]byte{h, h})))
	f.Add(`{"from":2,"to":5,"hashes":[]}`)
	f.Add(`{"from":2,"to":5,"hashes":null}`)
	f.Add(`{"from":"2","to":5}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		hashes, err := parseConsistency([]byte(body), 2, 5)
		if err != nil {
			return
		}
		if len(hashes) > maxProofHashes {
			t.Fatalf("accepted %d hashes", len(hashes))
		}
		for _, h := range hashes {
			if len(h) != 32 {
				t.Fatalf("accepted a %d-byte hash", len(h))
			}
		}
	})
}
