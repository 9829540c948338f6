package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/paytrail/paytrail/api/auth"
	"github.com/paytrail/paytrail/ledger"
)

// addPrincipal creates a principal directly in the store, as the CLI does,
// and lets h.do act as it.
func (h *harness) addPrincipal(name string, role auth.Role, merchants ...string) {
	h.t.Helper()
	p, tok, err := h.srv.Principals().Create(context.Background(), auth.CLIActor, name, role, merchants)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tokens[name], h.ids[name] = tok, p.ID
}

// listedPrincipals returns the names GET /v1/principals shows to as.
func listedPrincipals(t *testing.T, h *harness, as string) []string {
	t.Helper()
	r := h.do(as, "GET", "/v1/principals", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list as %s: %d %s", as, r.Status, r.Body)
	}
	var body struct {
		Items []principalView `json:"items"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range body.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// TestScopedAdminCreatesWithinScope: an admin scoped to one merchant cannot
// mint a "*" principal or one for another merchant (403, recorded), and can
// for its own merchant.
func TestScopedAdminCreatesWithinScope(t *testing.T) {
	h := newHarness(t)
	h.addPrincipal("admin_m1", auth.RoleAdmin, "m_bookshop")
	for _, tc := range []struct {
		name      string
		merchants []string
	}{
		{"star", []string{"*"}},
		{"other merchant", []string{"m_garage"}},
		{"own and other", []string{"m_bookshop", "m_garage"}},
		{"own and other in one string", []string{"m_bookshop,m_garage"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.node.Ledger.Size()
			r := h.do("admin_m1", "POST", "/v1/principals", map[string]any{"name": "escalated", "role": "auditor", "merchants": tc.merchants})
			if r.Status != http.StatusForbidden || r.errorCode(t) != "forbidden" {
				t.Fatalf("create %v as a scoped admin: %d %s, want 403 forbidden", tc.merchants, r.Status, r.Body)
			}
			// The denial is an access entry, and nothing else was written.
			if got := h.node.Ledger.Size(); got != before+1 {
				t.Fatalf("ledger grew by %d entries, want 1 (the denial)", got-before)
			}
			e, err := h.node.Ledger.Entry(before)
			if err != nil {
				t.Fatal(err)
			}
			var a ledger.AccessBody
			if err := e.DecodeBody(&a); err != nil || e.Kind != ledger.KindAccess || a.Action != "principal.create" ||
				a.Result != "failure" || a.Status != http.StatusForbidden || a.ActorID != h.ids["admin_m1"] {
				t.Fatalf("denial entry %s", e.Bytes())
			}
		})
	}
	if slices.Contains(listedPrincipals(t, h, "admin"), "escalated") {
		t.Fatalf("a denied principal was created")
	}

	r := h.do("admin_m1", "POST", "/v1/principals", map[string]any{"name": "bookshop clerk", "role": "finance", "merchants": []string{"m_bookshop"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create within scope: %d %s", r.Status, r.Body)
	}
	// The "*" admin still may do anything.
	r = h.do("admin", "POST", "/v1/principals", map[string]any{"name": "global auditor", "role": "auditor", "merchants": []string{"*"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create * as the * admin: %d %s", r.Status, r.Body)
	}
}

// TestScopedAdminListsWithinScope: the list shows a scoped admin only the
// principals whose merchants are all in its scope.
func TestScopedAdminListsWithinScope(t *testing.T) {
	h := newHarness(t)
	h.addPrincipal("admin_m1", auth.RoleAdmin, "m_bookshop")
	h.addPrincipal("auditor_m2", auth.RoleAuditor, "m_garage")
	h.addPrincipal("auditor_m12", auth.RoleAuditor, "m_bookshop", "m_garage")

	got := listedPrincipals(t, h, "admin_m1")
	want := []string{"admin_m1", "auditor_m1", "finance_m1"}
	if !slices.Equal(got, want) {
		t.Errorf("scoped admin lists %v, want %v", got, want)
	}
	if got := listedPrincipals(t, h, "admin"); len(got) != 9 {
		t.Errorf("* admin lists %v, want all 9", got)
	}
}

// TestScopedAdminRevokesWithinScope: revoking a principal outside the
// caller's scope answers exactly as an unknown id (404), leaves it working,
// and is recorded as a denied attempt; within scope it works.
func TestScopedAdminRevokesWithinScope(t *testing.T) {
	h := newHarness(t)
	h.addPrincipal("admin_m1", auth.RoleAdmin, "m_bookshop")
	h.addPrincipal("auditor_m2", auth.RoleAuditor, "m_garage")

	unknown := h.do("admin_m1", "DELETE", "/v1/principals/prn_0000000000000000", nil)
	if unknown.Status != http.StatusNotFound {
		t.Fatalf("revoke unknown: %d %s", unknown.Status, unknown.Body)
	}
	for _, victim := range []string{"auditor", "admin", "auditor_m2"} {
		before := h.node.Ledger.Size()
		r := h.do("admin_m1", "DELETE", "/v1/principals/"+h.ids[victim], nil)
		if r.Status != unknown.Status || string(r.Body) != string(unknown.Body) {
			t.Errorf("revoke out-of-scope %s: %d %s, want exactly the unknown id's %d %s", victim, r.Status, r.Body, unknown.Status, unknown.Body)
		}
		e, err := h.node.Ledger.Entry(before)
		var a ledger.AccessBody
		if err != nil || e.DecodeBody(&a) != nil || a.Action != "principal.revoke" || a.Result != "failure" || a.Status != http.StatusNotFound {
			t.Errorf("revoke out-of-scope %s not recorded as a denial: %v %s", victim, err, e.Bytes())
		}
	}
	// The out-of-scope principals still work.
	if r := h.do("auditor", "GET", "/v1/ledger/checkpoint", nil); r.Status != http.StatusOK {
		t.Errorf("auditor after a denied revoke: %d %s", r.Status, r.Body)
	}
	if r := h.do("admin", "GET", "/v1/principals", nil); r.Status != http.StatusOK {
		t.Errorf("admin after a denied revoke: %d %s", r.Status, r.Body)
	}

	if r := h.do("admin_m1", "DELETE", "/v1/principals/"+h.ids["auditor_m1"], nil); r.Status != http.StatusOK {
		t.Fatalf("revoke within scope: %d %s", r.Status, r.Body)
	}
	if r := h.do("auditor_m1", "GET", "/v1/ledger/checkpoint", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("revoked auditor_m1: %d, want 401", r.Status)
	}
	if r := h.do("admin", "DELETE", "/v1/principals/"+h.ids["auditor_m2"], nil); r.Status != http.StatusOK {
		t.Errorf("the * admin revokes anyone: %d %s", r.Status, r.Body)
	}
}

// TestScopedAdminDenialRecordsNoPAN: the merchants a denied creation asked
// for are recorded, redacted like any caller input.
func TestScopedAdminDenialRecordsNoPAN(t *testing.T) {
	h := newHarness(t)
	h.addPrincipal("admin_m1", auth.RoleAdmin, "m_bookshop")
	r := h.do("admin_m1", "POST", "/v1/principals", map[string]any{"name": "x", "role": "auditor", "merchants": []string{"m_garage", "4111.1111.1111.1111"}})
	if r.Status != http.StatusForbidden {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	e, err := h.node.Ledger.Entry(h.node.Ledger.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	var a ledger.AccessBody
	if err := e.DecodeBody(&a); err != nil || a.Resource != "principals: new, for merchants m_garage,(redacted)" || len(a.Merchants) != 0 {
		t.Errorf("denial entry %s", e.Bytes())
	}
	h.restart()
	h.assertNoCardholderData("4111.1111.1111.1111")
}
