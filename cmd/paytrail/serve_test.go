package main

import (
	"context"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/ledger"
	"github.com/paytrail/paytrail/ledger/datadir"
)

// TestRecordStartNamesKeysInForce: every start appends an admin entry with
// each keyset's key ids and primary, never key material, so offline
// rotations are on the ledger.
func TestRecordStartNamesKeysInForce(t *testing.T) {
	ctx := context.Background()
	node, err := datadir.Open(ctx, datadir.Config{Dir: t.TempDir(), Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := recordStart(ctx, node, node.Ledger); err != nil {
		t.Fatal(err)
	}
	e, err := node.Ledger.Entry(node.Ledger.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	var body ledger.AdminBody
	if err := e.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if e.Kind != ledger.KindAdmin || body.Action != "service.start" {
		t.Fatalf("entry %s", e.Bytes())
	}
	for _, ks := range node.Keys.Status() {
		got := body.Details["keyset_"+ks.Name]
		for _, k := range ks.Keys {
			want := k.ID
			if k.Primary {
				want += "(primary)"
			}
			if !strings.Contains(got, want) {
				t.Errorf("keyset %s: details %q lack %q", ks.Name, got, want)
			}
		}
	}
}
