package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	pwitness "github.com/paytrail/paytrail/api/witness"
)

// The receipt recipe of docs/auditors.md ("Verifying a receipt yourself"),
// byte for byte between the markers: TestAuditorsRecipeMatchesDoc checks
// the doc's block is this code, TestAuditorsRecipe runs it.

// BEGIN docs/auditors.md receipt recipe
// verifyReceipt checks a paytrail receipt (a C2SP tlog-proof) offline,
// with x/mod and formats alone: the ledger's signature under its pinned
// verifier key, at least quorum valid cosignatures by the witness keys
// you trust, and the inclusion of the entry whose stored bytes the
// receipt carries. It returns those bytes: hash them, read them, keep
// them with the receipt.
func verifyReceipt(receipt []byte, logKey string, witnessKeys []string, quorum int) ([]byte, error) {
	// formats' parser reads lines of at most 64 KiB, and the extra line
	// (the entry, base64) may be longer: it is decoded here.
	lines := bytes.SplitN(receipt, []byte("\n"), 3)
	if len(lines) != 3 || !bytes.HasPrefix(lines[1], []byte("extra ")) {
		return nil, errors.New("not a paytrail receipt: no extra line")
	}
	entry, err := base64.StdEncoding.DecodeString(string(lines[1][len("extra "):]))
	if err != nil {
		return nil, fmt.Errorf("extra line: %w", err)
	}
	var p proof.TLogProof
	if err := p.Unmarshal(slices.Concat(lines[0], []byte("\n"), lines[2])); err != nil {
		return nil, err
	}

	// The checkpoint: signed by the ledger's key (its name is the origin),
	// and cosigned by a quorum of the witnesses.
	lv, err := note.NewVerifier(logKey)
	if err != nil {
		return nil, err
	}
	policy := witness.Group{N: quorum}
	var wvs []note.Verifier
	for _, k := range witnessKeys {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, err
		}
		wvs = append(wvs, v)
		policy.Components = append(policy.Components, witness.Witness{Key: v})
	}
	cp, _, _, err := log.ParseCheckpoint(p.Checkpoint, lv.Name(), lv, wvs...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if !policy.Satisfied(p.Checkpoint) {
		return nil, fmt.Errorf("checkpoint: fewer than %d of the witnesses cosigned it", quorum)
	}
	if len(cp.Hash) != tlog.HashSize {
		return nil, errors.New("checkpoint: bad root hash")
	}

	// The entry: leaf p.Index of that tree, leaf hash SHA-256(0x00 || entry).
	hashes := make([]tlog.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		hashes[i] = h
	}
	if err := tlog.CheckRecord(hashes, int64(cp.Size), tlog.Hash(cp.Hash), int64(p.Index), tlog.RecordHash(entry)); err != nil {
		return nil, fmt.Errorf("entry %d is not in the tree of size %d: %w", p.Index, cp.Size, err)
	}
	return entry, nil
}

// END docs/auditors.md receipt recipe

func TestAuditorsRecipeMatchesDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/auditors.md")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("recipe_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- receipt recipe -->\n```go\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/auditors.md has no ```go block after <!-- receipt recipe -->")
	}
	code := regexp.MustCompile("(?s)// BEGIN docs/auditors.md receipt recipe\n(.*?)\n// END docs/auditors.md receipt recipe").FindSubmatch(self)
	if code == nil {
		t.Fatal("recipe_test.go lost its markers")
	}
	if !bytes.Equal(m[1], code[1]) {
		t.Errorf("the recipe in docs/auditors.md differs from recipe_test.go's verifyReceipt; copy one onto the other")
	}
	// The doc names the imports the block needs.
	for _, imp := range []string{"golang.org/x/mod/sumdb/note", "golang.org/x/mod/sumdb/tlog", "github.com/transparency-dev/formats/log",
		"github.com/transparency-dev/formats/note", "github.com/transparency-dev/formats/proof", "github.com/transparency-dev/formats/witness"} {
		if !bytes.Contains(doc, []byte(imp)) {
			t.Errorf("docs/auditors.md does not name the import %s", imp)
		}
	}
}

// TestAuditorsRecipe runs the recipe on real receipts: a witnessed one
// verifies with the quorum, and fails with a quorum the witnesses do not
// meet or when the entry is altered.
func TestAuditorsRecipe(t *testing.T) {
	a, b := newCosigningWitness(t, "witness.example/a"), newCosigningWitness(t, "witness.example/b")
	h := newHarnessSet(t, func(h *harness) {
		h.witnesses = []pwitness.Endpoint{a.endpoint("a"), b.endpoint("b")}
		h.witnessQuorum = 2
		h.witnessTiming = testWitnessTiming
	})
	r := h.postStandard("msg_recipe", genericEvent(t, map[string]any{"id": "evt_recipe"}))
	seq := r.json(t)["seq"]
	logKey := string(bytes.TrimSpace(h.do("", "GET", "/v1/ledger/public-key", nil).Body))
	var receipt []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := h.do("auditor", "GET", fmt.Sprintf("/v1/entries/%v/receipt?witnessed=1", seq), nil)
		if got.Status == 200 {
			receipt = got.Body
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no witnessed receipt: %d %s", got.Status, got.Body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	entry, err := verifyReceipt(receipt, logKey, []string{a.vkey, b.vkey}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(entry, []byte(`"event_id":"evt_recipe"`)) {
		t.Errorf("the entry returned is not the event's: %s", entry)
	}
	if _, err := verifyReceipt(receipt, logKey, []string{a.vkey}, 2); err == nil {
		t.Error("a quorum of 2 with one witness key passed")
	}
	_, otherKey, _ := note.GenerateKey(nil, "paytrail/0000000000000000")
	if _, err := verifyReceipt(receipt, otherKey, nil, 0); err == nil {
		t.Error("another ledger's key passed")
	}
	lines := bytes.SplitN(receipt, []byte("\n"), 3)
	forged := bytes.Replace(entry, []byte("evt_recipe"), []byte("evt_forged"), 1)
	bad := slices.Concat(lines[0], []byte("\nextra "+base64.StdEncoding.EncodeToString(forged)+"\n"), lines[2])
	if _, err := verifyReceipt(bad, logKey, []string{a.vkey, b.vkey}, 2); err == nil {
		t.Error("an altered entry passed")
	}
}
