//go:build linux

package api

import (
	"context"
	"fmt"
	"github.com/paytrail/paytrail/ledger/disktest"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paytrail/paytrail/api/auth"
)

// newHarnessAt is newHarness with the data dir at dir, and only the
// finance principal.
func newHarnessAt(t *testing.T, dir string) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, logs: &syncBuffer{}, tokens: map[string]string{}, ids: map[string]string{}}
	h.start()
	t.Cleanup(h.stop)
	_, tok, err := h.srv.Principals().Create(context.Background(), auth.CLIActor, "finance", auth.RoleFinance, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	h.tokens["finance"] = tok
	return h
}

// TestOutOfDisk runs a real server on a small tmpfs and fills it: webhooks
// answer 503 (never 500, never 200 for an event that is not durable) and
// readyz 503, with no crash; once the ballast is deleted, webhooks are
// accepted again without a restart, and every event answered 200 is in
// the ledger after a restart.
func TestOutOfDisk(t *testing.T) {
	mnt := disktest.MountTmpfs(t, "8m")
	h := newHarnessAt(t, filepath.Join(mnt, "data"))

	var acked []string // transaction ids of events answered 200
	post := func(i int) response {
		t.Helper()
		tx := fmt.Sprintf("pay_disk_%d", i)
		r := h.postStandard(fmt.Sprintf("msg_disk_%d", i), genericEvent(t, map[string]any{
			"id": fmt.Sprintf("evt_disk_%d", i), "transaction_id": tx,
		}))
		switch r.Status {
		case http.StatusOK:
			acked = append(acked, tx)
		case http.StatusServiceUnavailable:
			if code := r.errorCode(t); code != "unavailable" {
				t.Fatalf("event %d: 503 with code %q", i, code)
			}
		default:
			t.Fatalf("event %d: status %d: %s", i, r.Status, r.Body)
		}
		return r
	}
	readyz := func() int { return h.do("", "GET", "/readyz", nil).Status }

	for i := range 5 {
		if r := post(i); r.Status != http.StatusOK {
			t.Fatalf("event %d before the disk filled: %d", i, r.Status)
		}
	}
	if s := readyz(); s != http.StatusOK {
		t.Fatalf("readyz before the disk filled: %d", s)
	}

	ballast := disktest.Fill(t, mnt)
	i := 5
	for ; i < 5000; i++ {
		if post(i).Status == http.StatusServiceUnavailable {
			break
		}
	}
	if i == 5000 {
		t.Fatal("no 503 on a full disk")
	}
	r := h.do("", "GET", "/readyz", nil)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "disk") {
		t.Fatalf("readyz on a full disk: %d %s", r.Status, r.Body)
	}
	for j := range 10 {
		if s := post(10000 + j).Status; s != http.StatusServiceUnavailable {
			t.Fatalf("event on a full disk: %d, want 503", s)
		}
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz still unready a minute after space returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for j := range 5 {
		if s := post(20000 + j).Status; s != http.StatusOK {
			t.Fatalf("event after space returned: %d, want 200", s)
		}
	}

	h.restart()
	for _, tx := range acked {
		if r := h.do("finance", "GET", "/v1/transactions/"+tx, nil); r.Status != http.StatusOK {
			t.Errorf("transaction %s answered 200 is not in the ledger after restart: %d", tx, r.Status)
		}
	}
	if logs := h.logs.String(); strings.Contains(logs, "panic") {
		t.Errorf("the logs mention a panic:\n%s", logs)
	}
	h.assertNoCardholderData()
}
