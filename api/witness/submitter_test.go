package witness_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/paytrail/paytrail/api/witness"
	"github.com/paytrail/paytrail/ledger"
)

// The submitter is tested against witnesses written here from x/mod's
// note and tlog and formats' cosignature signer, never against package
// witness's own Server.

// indieWitness is an independent tlog-witness: state in memory, every
// check of the spec, and a record of what it was sent.
type indieWitness struct {
	t      testing.TB
	logKey note.Verifier
	signer note.Signer
	vkey   string
	mu     sync.Mutex
	size   uint64
	root   tlog.Hash
	posts  int
	// inflight and maxInflight count requests being answered at once.
	inflight, maxInflight int
	refused               []string // why requests were refused (an honest client causes only 409s)
	// behave, if set, answers instead of the protocol.
	behave func(w http.ResponseWriter, r *http.Request) bool
}

func newIndieWitness(t testing.TB, logVkey, name string) *indieWitness {
	lv, err := note.NewVerifier(logVkey)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	if vkey, err = fnote.VKeyToCosignatureV1(vkey); err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &indieWitness{t: t, logKey: lv, signer: s, vkey: vkey}
}

func (iw *indieWitness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iw.mu.Lock()
	iw.posts++
	iw.inflight++
	iw.maxInflight = max(iw.maxInflight, iw.inflight)
	behave := iw.behave
	iw.mu.Unlock()
	defer func() {
		iw.mu.Lock()
		iw.inflight--
		iw.mu.Unlock()
	}()
	if behave != nil && behave(w, r) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/w/add-checkpoint" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	head, cp, ok := strings.Cut(string(body), "\n\n")
	lines := strings.Split(head, "\n")
	if !ok || !strings.HasPrefix(lines[0], "old ") {
		iw.refuse(w, 400, "malformed")
		return
	}
	old, err := strconv.ParseUint(strings.TrimPrefix(lines[0], "old "), 10, 64)
	if err != nil {
		iw.refuse(w, 400, "malformed old")
		return
	}
	var proof tlog.TreeProof
	for _, l := range lines[1:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != 32 {
			iw.refuse(w, 400, "malformed proof")
			return
		}
		proof = append(proof, tlog.Hash(h))
	}
	n, err := note.Open([]byte(cp), note.VerifierList(iw.logKey))
	if err != nil {
		iw.refuse(w, 403, "signature: "+err.Error())
		return
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil || c.Origin != iw.logKey.Name() {
		iw.refuse(w, 400, "checkpoint")
		return
	}
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if old != iw.size {
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(409)
		fmt.Fprintf(w, "%d\n", iw.size)
		return
	}
	if old > c.Size {
		iw.refuseLocked(w, 400, "old > size")
		return
	}
	if old > 0 {
		if old == c.Size && len(proof) == 0 {
			if tlog.Hash(c.Hash) != iw.root {
				iw.refuseLocked(w, 422, "same size, other root")
				return
			}
		} else if err := tlog.CheckTree(proof, int64(c.Size), tlog.Hash(c.Hash), int64(old), iw.root); err != nil {
			iw.refuseLocked(w, 422, "inconsistent: "+err.Error())
			return
		}
	} else if len(proof) != 0 {
		iw.refuseLocked(w, 422, "proof from 0")
		return
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, iw.signer)
	if err != nil {
		iw.t.Error(err)
		return
	}
	iw.size, iw.root = c.Size, tlog.Hash(c.Hash)
	w.Write(signed[len(n.Text)+1:])
}

func (iw *indieWitness) refuse(w http.ResponseWriter, status int, why string) {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	iw.refuseLocked(w, status, why)
}

func (iw *indieWitness) refuseLocked(w http.ResponseWriter, status int, why string) {
	iw.refused = append(iw.refused, why)
	http.Error(w, why, status)
}

func (iw *indieWitness) state() (uint64, []string) {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	return iw.size, append([]string(nil), iw.refused...)
}

// testLedger opens a real ledger signing checkpoints every 10 ms.
func testLedger(t testing.TB) (*ledger.Ledger, string) {
	t.Helper()
	var vkey string
	l, err := ledger.Open(context.Background(), ledger.Options{
		Dir: t.TempDir(), CheckpointInterval: 10 * time.Millisecond,
		Signer: func(origin string) (note.Signer, error) {
			skey, vk, err := note.GenerateKey(rand.Reader, origin)
			if err != nil {
				return nil, err
			}
			vkey = vk
			return note.NewSigner(skey)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, vkey
}

func appendN(t testing.TB, l *ledger.Ledger, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if _, err := l.Append(ctx, ledger.Record{
			Kind: ledger.KindAdmin, ID: ledger.NewRecordID(), Time: time.Now(), Policy: 1,
			Body: ledger.AdminBody{ActorID: "test", ActorName: "test", Action: "test.append", Target: strconv.Itoa(i)},
		}); err != nil {
			t.Fatal(err)
		}
	}
}

var fastTiming = witness.Timing{Timeout: 300 * time.Millisecond, Poll: 5 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}

func startSubmitter(t testing.TB, l *ledger.Ledger, quorum int, eps ...witness.Endpoint) (*witness.Submitter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := witness.NewSubmitter(witness.SubmitterConfig{Log: l, Witnesses: eps, Quorum: quorum, Timing: fastTiming, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, reg
}

// eventually waits, at most 10 s, for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func latestSize(t testing.TB, l *ledger.Ledger) uint64 {
	cp, err := l.LatestCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	var c log.Checkpoint
	text, _, _ := bytes.Cut(cp, []byte("\n\n"))
	if _, err := c.Unmarshal(append(text, '\n')); err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// TestSubmitterInterop: the submitter gets cosignatures from two
// independent witnesses as the ledger grows, learning their sizes from
// 409s (one of them already knew an older checkpoint), never sends a
// checkpoint they must refuse, and stores only verified cosignatures,
// which the served checkpoint then carries and formats' quorum policy
// accepts.
func TestSubmitterInterop(t *testing.T) {
	l, logVkey := testLedger(t)
	appendN(t, l, 3)
	a := newIndieWitness(t, logVkey, "witness.example/a")
	b := newIndieWitness(t, logVkey, "witness.example/b")
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()

	// b saw the checkpoint of size 3 earlier (cosigned for someone else).
	eventually(t, "a checkpoint of size 3", func() bool { return latestSize(t, l) == 3 })
	cp3, _ := l.Checkpoint(3)
	b.mu.Lock()
	n, _ := note.Open(cp3, note.VerifierList(b.logKey))
	var c log.Checkpoint
	c.Unmarshal([]byte(n.Text))
	b.size, b.root = 3, tlog.Hash(c.Hash)
	b.mu.Unlock()

	sub, reg := startSubmitter(t, l, 2,
		witness.Endpoint{Name: "a", URL: sa.URL + "/w", Key: a.vkey},
		witness.Endpoint{Name: "b", URL: sb.URL + "/w/", Key: b.vkey})
	for round := 0; round < 3; round++ {
		appendN(t, l, 5)
		want := l.Size()
		eventually(t, fmt.Sprintf("both witnesses at size %d", want), func() bool {
			sa, _ := a.state()
			sb, _ := b.state()
			w, ok := sub.Witnessed()
			return sa == want && sb == want && ok && w == want
		})
	}
	for _, iw := range []*indieWitness{a, b} {
		if _, refused := iw.state(); len(refused) != 0 {
			t.Errorf("a witness refused requests: %q", refused)
		}
		iw.mu.Lock()
		if iw.maxInflight > 1 {
			t.Errorf("%d requests in flight at once to one witness", iw.maxInflight)
		}
		iw.mu.Unlock()
	}
	size := l.Size()
	cp, err := l.CosignedCheckpoint(size)
	if err != nil {
		t.Fatal(err)
	}
	av, _ := fnote.NewVerifierForCosignatureV1(a.vkey)
	bv, _ := fnote.NewVerifierForCosignatureV1(b.vkey)
	lv, _ := note.NewVerifier(logVkey)
	if n, err := note.Open(cp, note.VerifierList(lv, av, bv)); err != nil || len(n.Sigs) != 3 {
		t.Fatalf("served checkpoint: %v\n%s", err, cp)
	}
	if !sub.Satisfied(cp) {
		t.Error("formats' quorum policy is not satisfied by the served checkpoint")
	}
	if got := metricValue(t, reg, "paytrail_witness_cosigned_size", "a"); got != float64(size) {
		t.Errorf("cosigned size metric %v, want %d", got, size)
	}
	if sub.Lag() != 0 {
		t.Errorf("lag %d, want 0", sub.Lag())
	}
}

// metricValue is the value of the series of name with label witness=w
// (and kind, if given), or -1 if there is none.
func metricValue(t testing.TB, reg *prometheus.Registry, name, w string, kind ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "witness" && lp.GetValue() != w || lp.GetName() == "kind" && (len(kind) == 0 || lp.GetValue() != kind[0]) {
					continue series
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestSubmitterFaults: witnesses that answer garbage, cosign with another
// key, fail, stall past the timeout, or claim a larger tree than the
// ledger's never get a cosignature stored, are counted by error kind, and
// never slow appends; a good witness beside them still cosigns.
func TestSubmitterFaults(t *testing.T) {
	l, logVkey := testLedger(t)
	appendN(t, l, 2)
	good := newIndieWitness(t, logVkey, "witness.example/good")
	stop := make(chan struct{})
	faults := map[string]func(w http.ResponseWriter, r *http.Request) bool{
		witness.KindBadResponse: func(w http.ResponseWriter, r *http.Request) bool {
			io.WriteString(w, "hello, I am not a signature\n")
			return true
		},
		witness.KindHTTPStatus: func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", 500)
			return true
		},
		witness.KindTimeout: func(w http.ResponseWriter, r *http.Request) bool {
			select { // stalls until the client gives up (or the test ends)
			case <-r.Context().Done():
			case <-stop:
			}
			return true
		},
		witness.KindWitnessAhead: func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/x.tlog.size")
			w.WriteHeader(409)
			io.WriteString(w, "18446744073709551615\n")
			return true
		},
		witness.KindConflict: func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/x.tlog.size")
			w.WriteHeader(409)
			io.WriteString(w, "1\n") // whatever it is sent
			return true
		},
	}
	eps := []witness.Endpoint{}
	var posts []*indieWitness
	for kind, f := range faults {
		iw := newIndieWitness(t, logVkey, "witness.example/"+kind)
		iw.behave = f
		srv := httptest.NewServer(iw)
		defer srv.Close()
		eps = append(eps, witness.Endpoint{Name: kind, URL: srv.URL + "/w", Key: iw.vkey})
		posts = append(posts, iw)
	}
	// A witness whose answers are cosignatures by a key other than the
	// one configured for it.
	liar := newIndieWitness(t, logVkey, "witness.example/liar")
	impostor := newIndieWitness(t, logVkey, "witness.example/liar")
	ls := httptest.NewServer(liar)
	defer ls.Close()
	liarKey := impostor.vkey
	eps = append(eps, witness.Endpoint{Name: "liar", URL: ls.URL + "/w", Key: liarKey})
	gs := httptest.NewServer(good)
	defer gs.Close()
	defer close(stop)
	eps = append(eps, witness.Endpoint{Name: "good", URL: gs.URL + "/w", Key: good.vkey})

	sub, reg := startSubmitter(t, l, 1, eps...)
	appendN(t, l, 50) // appends go on while witnesses fail and stall
	want := l.Size()
	eventually(t, "the good witness at the ledger's size", func() bool {
		s, _ := good.state()
		w, _ := sub.Witnessed()
		return s == want && w == want
	})
	for _, kind := range append(mapKeys(faults), witness.KindBadCosignature) {
		name := kind
		if kind == witness.KindBadCosignature {
			name = "liar"
		}
		eventually(t, "a failure of kind "+kind, func() bool {
			return metricValue(t, reg, "paytrail_witness_failures_total", name, kind) > 0 &&
				metricValue(t, reg, "paytrail_witness_last_error", name, kind) == 1
		})
	}
	for size := uint64(1); size <= want; size++ {
		sigs, _ := l.Cosignatures(size)
		for _, s := range sigs {
			if s.Name != "witness.example/good" {
				t.Errorf("size %d: a cosignature by %s was stored", size, s.Name)
			}
		}
	}
	if metricValue(t, reg, "paytrail_witness_last_error", "good", witness.KindNone) != 1 {
		t.Error("the good witness's last result is not none")
	}
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
