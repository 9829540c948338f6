package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestWitnessScript runs the scripts of testdata/witness: paytrail
// serve submitting to paytrail witness serve, receipts verified offline,
// and a witness killed with SIGKILL that still refuses what it would
// have had to forget. The scripts' own log (testlog, addcp) is written
// here from x/mod's note and tlog, not with paytrail's code.
func TestWitnessScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/witness",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":      scriptExitCode,
			"capture":       scriptCapture,
			"waitserve":     scriptWaitServe,
			"sigterm":       scriptSigterm,
			"fetch":         scriptFetch,
			"vkeys":         scriptVerifierKeys,
			"kill9":         scriptKill9,
			"perm":          scriptPerm,
			"testlog":       scriptTestLog,
			"addcp":         scriptAddCheckpoint,
			"witnessconfig": scriptWitnessConfig,
			"waitwitnessed": scriptWaitWitnessed,
			"fetchauth":     scriptFetchAuth,
			"corrupt":       scriptCorrupt,
		},
	})
}

// kill9: sends SIGKILL to every background command (wait then reaps them;
// prefix their exec with ! so that wait expects the failure).
func scriptKill9(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "kill9")
	for _, c := range ts.BackgroundCmds() {
		ts.Check(c.Process.Signal(syscall.SIGKILL))
	}
}

const testLogOrigin = "example.com/scriptlog"

// testlog DIR: makes the key of an independent test log in DIR and sets
// TESTLOG_VKEY.
func scriptTestLog(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "testlog")
	if len(args) != 1 {
		ts.Fatalf("usage: testlog DIR")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, testLogOrigin)
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(os.WriteFile(filepath.Join(dir, "skey"), []byte(skey), 0o600))
	ts.Setenv("TESTLOG_VKEY", vkey)
}

// scriptTree is the test log's tree of n leaves; the fork differs at
// leaf 3.
type scriptTree struct{ hashes []tlog.Hash }

func (t *scriptTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = t.hashes[x]
	}
	return out, nil
}

func newScriptTree(ts *testscript.TestScript, n int64, fork bool) *scriptTree {
	t := &scriptTree{}
	for i := range n {
		d := "leaf " + strconv.FormatInt(i, 10)
		if fork && i == 3 {
			d = "rewritten"
		}
		hs, err := tlog.StoredHashes(i, []byte(d), t)
		ts.Check(err)
		t.hashes = append(t.hashes, hs...)
	}
	return t
}

// addcp DIR URL OLD SIZE honest|fork STATUS: posts the test log's
// checkpoint of SIZE with a proof from OLD to the witness at URL and
// checks the answer's status; a 200 must be a valid cosignature by
// WITNESS_VKEY.
func scriptAddCheckpoint(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "addcp")
	if len(args) != 6 {
		ts.Fatalf("usage: addcp DIR URL OLD SIZE honest|fork STATUS")
	}
	skey, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), "skey"))
	ts.Check(err)
	signer, err := note.NewSigner(string(skey))
	ts.Check(err)
	old, err1 := strconv.ParseInt(args[2], 10, 64)
	size, err2 := strconv.ParseInt(args[3], 10, 64)
	want, err3 := strconv.Atoi(args[5])
	if err1 != nil || err2 != nil || err3 != nil {
		ts.Fatalf("bad number")
	}
	tree := newScriptTree(ts, size, args[4] == "fork")
	root, err := tlog.TreeHash(size, tree)
	ts.Check(err)
	text := log.Checkpoint{Origin: testLogOrigin, Size: uint64(size), Hash: root[:]}.Marshal()
	cp, err := note.Sign(&note.Note{Text: string(text)}, signer)
	ts.Check(err)
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	if old > 0 && old < size {
		p, err := tlog.ProveTree(size, old, tree)
		ts.Check(err)
		for _, h := range p {
			b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(cp)
	resp, err := http.Post(args[1]+"/add-checkpoint", "text/plain", &b)
	ts.Check(err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		ts.Fatalf("add-checkpoint old %d size %d %s: %d %s, want %d", old, size, args[4], resp.StatusCode, body, want)
	}
	fmt.Fprintf(ts.Stdout(), "%d %s", resp.StatusCode, body)
	if want == 200 {
		v, err := fnote.NewVerifierForCosignatureV1(ts.Getenv("WITNESS_VKEY"))
		ts.Check(err)
		if n, err := note.Open(append(cp, body...), note.VerifierList(v)); err != nil || len(n.Sigs) != 1 {
			ts.Fatalf("the answer is not a cosignature by the witness: %v", err)
		}
	}
}

// witnessconfig FILE URL VKEY: writes a paytrail config naming one
// witness.
func scriptWitnessConfig(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "witnessconfig")
	if len(args) != 3 {
		ts.Fatalf("usage: witnessconfig FILE URL VKEY")
	}
	cfg := fmt.Sprintf("witnesses:\n  - name: auditor\n    url: %s\n    key: %s\nwitness_quorum: 1\n", args[1], args[2])
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(cfg), 0o600))
}

// waitwitnessed URL: waits until the newest witnessed checkpoint covers
// every entry the server held when it started waiting.
func scriptWaitWitnessed(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "waitwitnessed")
	if len(args) != 1 {
		ts.Fatalf("usage: waitwitnessed URL")
	}
	var first struct{ Entries uint64 }
	ts.Check(getJSON(args[0]+"/readyz", "", &first))
	deadline := time.Now().Add(scriptTimeout)
	for {
		var r struct {
			WitnessedSize uint64 `json:"witnessed_size"`
		}
		ts.Check(getJSON(args[0]+"/readyz", "", &r))
		if r.WitnessedSize >= first.Entries {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no witnessed checkpoint covers %d entries within %s", first.Entries, scriptTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetchauth URL TOKEN: GET with a bearer token, body to stdout.
func scriptFetchAuth(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "fetchauth")
	if len(args) != 2 {
		ts.Fatalf("usage: fetchauth URL TOKEN")
	}
	b, err := httpGet(args[0], args[1])
	ts.Check(err)
	ts.Stdout().Write(b)
}

// corrupt FILE: changes one character of the second line (a receipt's
// extra line: the entry's bytes).
func scriptCorrupt(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "corrupt")
	if len(args) != 1 {
		ts.Fatalf("usage: corrupt FILE")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	i := bytes.IndexByte(b, '\n') + 20
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	ts.Check(os.WriteFile(p, b, 0o600))
}
