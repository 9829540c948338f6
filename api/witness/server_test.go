package witness_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/paytrail/paytrail/api/witness"
)

// The witness server is tested against a client written here from
// x/mod's note and tlog and formats' checkpoint and cosignature verifier:
// no code of package witness is on the client's side.

// testLog is an independent log: leaves in memory, RFC 6962 hashes by
// x/mod's tlog, checkpoints signed with x/mod's note.
type testLog struct {
	t      testing.TB
	origin string
	signer note.Signer
	vkey   string
	hashes []tlog.Hash // tlog's stored hashes
	n      int64
}

func newTestLog(t testing.TB, origin string) *testLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, origin: origin, signer: s, vkey: vkey}
}

func (l *testLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.hashes[x]
	}
	return out, nil
}

// grow appends n leaves.
func (l *testLog) grow(n int) {
	for range n {
		hs, err := tlog.StoredHashes(l.n, []byte(fmt.Sprintf("leaf %d", l.n)), l)
		if err != nil {
			l.t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.n++
	}
}

func (l *testLog) root(n int64) tlog.Hash {
	if n == 0 {
		return sha256.Sum256(nil)
	}
	h, err := tlog.TreeHash(n, l)
	if err != nil {
		l.t.Fatal(err)
	}
	return h
}

// checkpoint signs the checkpoint of size n with signers (the log's by
// default).
func (l *testLog) checkpoint(n int64, signers ...note.Signer) []byte {
	if len(signers) == 0 {
		signers = []note.Signer{l.signer}
	}
	r := l.root(n)
	body := log.Checkpoint{Origin: l.origin, Size: uint64(n), Hash: r[:]}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		l.t.Fatal(err)
	}
	return msg
}

func (l *testLog) proof(from, to int64) []tlog.Hash {
	if from == 0 || from == to {
		return nil
	}
	p, err := tlog.ProveTree(to, from, l)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// addBody writes an add-checkpoint body by hand, as the spec shows it.
func addBody(old int64, proof []tlog.Hash, cp []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	return []byte(b.String())
}

// testWitnessKey returns a witness signer and its cosignature vkey.
func testWitnessKey(t testing.TB, name string, mldsa bool) (note.Signer, string) {
	var skey, vkey string
	var err error
	if mldsa {
		skey, vkey, err = fnote.GenerateMLDSAKey(name)
	} else {
		skey, vkey, err = note.GenerateKey(rand.Reader, name)
		if err == nil {
			vkey, err = fnote.VKeyToCosignatureV1(vkey)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

type witnessUnderTest struct {
	t    testing.TB
	dir  string
	srv  *witness.Server
	http *httptest.Server
	vkey string
	sign note.Signer
	logs []note.Verifier
}

func startWitness(t testing.TB, dir string, signer note.Signer, vkey string, logs ...*testLog) *witnessUnderTest {
	t.Helper()
	w := &witnessUnderTest{t: t, dir: dir, vkey: vkey, sign: signer}
	for _, l := range logs {
		v, err := note.NewVerifier(l.vkey)
		if err != nil {
			t.Fatal(err)
		}
		w.logs = append(w.logs, v)
	}
	w.open()
	t.Cleanup(w.close)
	return w
}

func (w *witnessUnderTest) open() {
	srv, err := witness.OpenServer(witness.ServerConfig{Dir: w.dir, Signer: w.sign, Logs: w.logs})
	if err != nil {
		w.t.Fatal(err)
	}
	w.srv, w.http = srv, httptest.NewServer(srv)
}

func (w *witnessUnderTest) close() {
	if w.http != nil {
		w.http.Close()
		w.srv.Close()
		w.http = nil
	}
}

func (w *witnessUnderTest) post(body []byte) (int, string, []byte) {
	w.t.Helper()
	resp, err := http.Post(w.http.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// cosigned checks a 200 answer's lines with formats' verifier: appended
// to the checkpoint, the note opens with the witness key.
func (w *witnessUnderTest) cosigned(cp, answer []byte) {
	w.t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(w.vkey)
	if err != nil {
		w.t.Fatal(err)
	}
	n, err := note.Open(append(bytes.Clone(cp), answer...), note.VerifierList(v))
	if err != nil || len(n.Sigs) != 1 {
		w.t.Fatalf("the answer is not a cosignature by the witness: %v\n%s", err, answer)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil || ts.Unix() == 0 {
		w.t.Fatalf("cosignature timestamp %v, %v", ts, err)
	}
}

func TestWitnessServerStatusCodes(t *testing.T) {
	for _, mldsa := range []bool{false, true} {
		t.Run(fmt.Sprintf("mldsa=%v", mldsa), func(t *testing.T) {
			lg := newTestLog(t, "example.com/testlog")
			other := newTestLog(t, "example.com/otherlog")
			signer, vkey := testWitnessKey(t, "witness.example/w1", mldsa)
			w := startWitness(t, t.TempDir(), signer, vkey, lg)
			lg.grow(5)

			// A first checkpoint, old 0, no proof: cosigned.
			cp5 := lg.checkpoint(5)
			status, _, body := w.post(addBody(0, nil, cp5))
			if status != 200 {
				t.Fatalf("first checkpoint: %d %s", status, body)
			}
			w.cosigned(cp5, body)

			lg.grow(7)
			cp12 := lg.checkpoint(12)
			// A fork: the same log key over a tree whose leaf 3 differs.
			forked := &testLog{t: t, origin: lg.origin, signer: lg.signer, vkey: lg.vkey}
			for i := range 12 {
				d := fmt.Sprintf("leaf %d", i)
				if i == 3 {
					d = "rewritten"
				}
				hs, err := tlog.StoredHashes(int64(i), []byte(d), forked)
				if err != nil {
					t.Fatal(err)
				}
				forked.hashes = append(forked.hashes, hs...)
				forked.n++
			}
			badKey := newTestLog(t, lg.origin) // same origin, another key
			badKey.hashes, badKey.n = lg.hashes, lg.n
			// The log's signature line with its signature zeroed.
			sig := mustDecodeSig(t, cp12)
			cut := bytes.LastIndex(cp12, []byte(" ")) + 1
			tampered := append(bytes.Clone(cp12[:cut]), base64.StdEncoding.EncodeToString(append(sig[:4:4], make([]byte, len(sig)-4)...))+"\n"...)

			for _, tc := range []struct {
				name   string
				body   []byte
				status int
			}{
				{"malformed: no old line", []byte("12\n\n" + string(cp12)), 400},
				{"malformed: old 05", []byte("old 05\n\n" + string(cp12)), 400},
				{"malformed: proof line not base64", []byte("old 5\n!!!\n\n" + string(cp12)), 400},
				{"malformed: short hash", []byte("old 5\nAAAA\n\n" + string(cp12)), 400},
				{"malformed: 64 proof lines", addBody(5, make([]tlog.Hash, 64), cp12), 400},
				{"malformed: no checkpoint", []byte("old 5\n\n"), 400},
				{"unknown log", addBody(0, nil, other.checkpoint(0)), 404},
				{"unknown key of a known log", addBody(5, lg.proof(5, 12), badKey.checkpoint(12)), 403},
				{"bad signature by the log's key", addBody(5, lg.proof(5, 12), tampered), 403},
				{"old size above the checkpoint's", addBody(13, nil, cp12), 400},
				{"huge old size", []byte("old 18446744073709551615\n\n" + string(cp12)), 400},
				{"old size past uint64", []byte("old 18446744073709551616\n\n" + string(cp12)), 400},
				{"stale old size", addBody(0, nil, cp12), 409},
				{"wrong old size", addBody(3, lg.proof(3, 12), cp12), 409},
				{"bad proof", addBody(5, make([]tlog.Hash, len(lg.proof(5, 12))), cp12), 422},
				{"fork", addBody(5, forked.proof(5, 12), forked.checkpoint(12)), 422},
				{"same size other root", addBody(5, nil, forked.checkpoint(5)), 422},
				{"replay of the cosigned checkpoint is re-cosigned", addBody(5, nil, cp5), 200},
			} {
				status, ctype, body := w.post(tc.body)
				if status != tc.status {
					t.Errorf("%s: status %d, want %d (%s)", tc.name, status, tc.status, body)
				}
				if status == 409 && (ctype != witness.SizeContentType || string(body) != "5\n") {
					t.Errorf("%s: 409 answered %q %q, want %q \"5\\n\"", tc.name, ctype, body, witness.SizeContentType)
				}
			}

			// The honest extension is cosigned; then the old checkpoint
			// replayed is refused (old > size, or old 5 now stale).
			status, _, body = w.post(addBody(5, lg.proof(5, 12), cp12))
			if status != 200 {
				t.Fatalf("consistent checkpoint: %d %s", status, body)
			}
			w.cosigned(cp12, body)
			if status, _, _ := w.post(addBody(5, nil, cp5)); status != 409 {
				t.Errorf("replay of an old checkpoint with its old size: %d, want 409", status)
			}
			if status, _, _ := w.post(addBody(12, nil, cp5)); status != 400 {
				t.Errorf("replay of an old checkpoint with the current size: %d, want 400", status)
			}

			// Monitoring: the latest cosigned checkpoint, by origin hash.
			sum := sha256.Sum256([]byte(lg.origin))
			resp, err := http.Get(w.http.URL + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lv, _ := note.NewVerifier(lg.vkey)
			wv, _ := fnote.NewVerifierForCosignatureV1(vkey)
			if n, err := note.Open(got, note.VerifierList(lv, wv)); resp.StatusCode != 200 || err != nil || len(n.Sigs) != 2 || !strings.HasPrefix(string(got), string(lg.checkpoint(12)[:40])) {
				t.Errorf("monitoring checkpoint: %d %v\n%s", resp.StatusCode, err, got)
			}

			// The state survives a restart: a fork of a cosigned size is
			// still refused, the honest successor still accepted.
			w.close()
			w.open()
			if status, _, _ := w.post(addBody(12, nil, forked.checkpoint(12))); status != 422 {
				t.Errorf("after restart: a fork of size 12 answered %d, want 422", status)
			}
			if status, ctype, body := w.post(addBody(0, nil, cp12)); status != 409 || ctype != witness.SizeContentType || string(body) != "12\n" {
				t.Errorf("after restart: %d %q %q, want 409 12", status, ctype, body)
			}
		})
	}
}

func mustDecodeSig(t testing.TB, cp []byte) []byte {
	i := bytes.LastIndex(cp, []byte(" "))
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(cp[i+1:])))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWitnessServerEmptyTree: a checkpoint of size 0 must commit to the
// empty tree.
func TestWitnessServerEmptyTree(t *testing.T) {
	lg := newTestLog(t, "example.com/testlog")
	signer, vkey := testWitnessKey(t, "witness.example/w1", false)
	w := startWitness(t, t.TempDir(), signer, vkey, lg)
	body := log.Checkpoint{Origin: lg.origin, Size: 0, Hash: make([]byte, 32)}.Marshal()
	bad, _ := note.Sign(&note.Note{Text: string(body)}, lg.signer)
	if status, _, _ := w.post(addBody(0, nil, bad)); status != 422 {
		t.Errorf("size 0 with a non-empty root: %d, want 422", status)
	}
	if status, _, b := w.post(addBody(0, nil, lg.checkpoint(0))); status != 200 {
		t.Errorf("size 0 with the empty root: %d %s", status, b)
	}
	lg.grow(1)
	if status, _, _ := w.post(addBody(0, []tlog.Hash{{}}, lg.checkpoint(1))); status != 422 {
		t.Errorf("a proof from size 0: %d, want 422", status)
	}
}

// FuzzWitnessAddCheckpoint: whatever the body, the witness answers a
// status of the spec (never 5xx, never a panic), and a 200 only with a
// valid cosignature of a checkpoint the log signed.
func FuzzWitnessAddCheckpoint(f *testing.F) {
	lg := newTestLog(f, "example.com/testlog")
	signer, vkey := testWitnessKey(f, "witness.example/w1", false)
	lv, err := note.NewVerifier(lg.vkey)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := witness.OpenServer(witness.ServerConfig{Dir: f.TempDir(), Signer: signer, Logs: []note.Verifier{lv}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	wv, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		f.Fatal(err)
	}
	lg.grow(7)
	f.Add(addBody(0, nil, lg.checkpoint(3)))
	f.Add(addBody(3, lg.proof(3, 7), lg.checkpoint(7)))
	f.Add(addBody(7, nil, lg.checkpoint(7)))
	f.Add([]byte("old 0\n\nexample.com/testlog\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/add-checkpoint", bytes.NewReader(body)))
		switch rec.Code {
		case 200:
			req, err := witness.ParseAddCheckpoint(body)
			if err != nil {
				t.Fatalf("200 for a malformed body %q", body)
			}
			if n, err := note.Open(append(bytes.Clone(req.Checkpoint), rec.Body.Bytes()...), note.VerifierList(lv, wv)); err != nil || len(n.Sigs) < 2 {
				t.Fatalf("200 without a valid log signature and cosignature: %v", err)
			}
		case 400, 403, 404, 409, 413, 422:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

// TestWitnessServerOversizedBody: a body over MaxBodySize is refused
// unread past the limit.
func TestWitnessServerOversizedBody(t *testing.T) {
	lg := newTestLog(t, "example.com/testlog")
	signer, vkey := testWitnessKey(t, "witness.example/w1", false)
	w := startWitness(t, t.TempDir(), signer, vkey, lg)
	body := append(addBody(0, nil, lg.checkpoint(0)), bytes.Repeat([]byte("\u2014 x AAAA\n"), witness.MaxBodySize/8)...)
	if status, _, _ := w.post(body); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a %d-byte body: %d, want 413", len(body), status)
	}
}
