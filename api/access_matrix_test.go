package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/paytrail/paytrail/api/auth"
)

// matrixTarget is which record a request names, relative to the caller's
// scope: one of merchant m_bookshop (in every scope), one of m_garage (in
// scope "*" only), or one that does not exist.
type matrixTarget string

const (
	targetIn      matrixTarget = "in-scope"
	targetOut     matrixTarget = "out-of-scope"
	targetMissing matrixTarget = "missing"
)

// matrixCaller is a caller of the matrix: a harness principal or an
// unauthenticated one.
type matrixCaller struct {
	name  string // harness principal name, or a label
	token string // what h.do sends
	role  auth.Role
	all   bool // scope "*"
	anon  bool // no valid credentials: expect 401
}

// matrixFixture is what the matrix requests point at.
type matrixFixture struct {
	inSeq, outSeq, treeSize uint64
}

// matrixEndpoint is one route of the matrix.
type matrixEndpoint struct {
	name   string
	action string      // the access entry's action
	roles  []auth.Role // roles the route admits
	// scoped is false for routes without a record to be in or out of scope;
	// they run once per caller.
	scoped bool
	// masked: a 200 answer is a masked view and must hold no personal data.
	masked bool
	req    func(f matrixFixture, c matrixCaller, t matrixTarget) (method, path string, body any)
	// want is the answer for a caller the route admits, and whether that
	// answer is recorded as an access entry.
	want func(c matrixCaller, t matrixTarget) (status int, recorded bool)
}

// visible reports whether the target exists and is in c's scope.
func (t matrixTarget) visible(c matrixCaller) bool {
	return t == targetIn || t == targetOut && c.all
}

func (t matrixTarget) pick(in, out, missing string) string {
	switch t {
	case targetIn:
		return in
	case targetOut:
		return out
	}
	return missing
}

// visibleOr404 is the rule for reads of one record: 200 when visible, else
// 404, recorded either way.
func visibleOr404(c matrixCaller, t matrixTarget) (int, bool) {
	if t.visible(c) {
		return 200, true
	}
	return 404, true
}

var matrixEndpoints = []matrixEndpoint{
	{
		name: "list", action: "transactions.list", roles: []auth.Role{auditor, finance}, scoped: true, masked: true,
		req: func(_ matrixFixture, _ matrixCaller, t matrixTarget) (string, string, any) {
			return "GET", "/v1/transactions?merchant_id=" + t.pick("m_bookshop", "m_garage", "m_nowhere"), nil
		},
		want: func(matrixCaller, matrixTarget) (int, bool) { return 200, true },
	},
	{
		name: "get", action: "transaction.read", roles: []auth.Role{auditor, finance}, scoped: true, masked: true,
		req: func(_ matrixFixture, _ matrixCaller, t matrixTarget) (string, string, any) {
			return "GET", "/v1/transactions/" + t.pick("pay_in", "pay_out", "pay_missing"), nil
		},
		want: visibleOr404,
	},
	{
		name: "disclose", action: "transaction.disclose", roles: []auth.Role{auditor, privacy}, scoped: true,
		req: func(_ matrixFixture, c matrixCaller, t matrixTarget) (string, string, any) {
			purpose := "fraud_investigation"
			if c.role == privacy {
				purpose = "cardholder_request"
			}
			return "POST", "/v1/transactions/" + t.pick("pay_in", "pay_out", "pay_missing") + "/disclose",
				map[string]string{"purpose": purpose, "justification": "access matrix"}
		},
		want: visibleOr404,
	},
	{
		name: "cards/search", action: "cards.search", roles: []auth.Role{auditor, finance}, scoped: true, masked: true,
		req: func(_ matrixFixture, _ matrixCaller, t matrixTarget) (string, string, any) {
			return "POST", "/v1/cards/search", map[string]string{"pan": t.pick(testPAN, viewsOtherPAN, viewsUnseenPAN)}
		},
		want: func(matrixCaller, matrixTarget) (int, bool) { return 200, true },
	},
	{
		name: "access-log", action: "access_log.read", roles: []auth.Role{auditor, admin},
		req: func(matrixFixture, matrixCaller, matrixTarget) (string, string, any) {
			return "GET", "/v1/access-log?limit=5", nil
		},
		want: func(c matrixCaller, _ matrixTarget) (int, bool) {
			if !c.all {
				return 403, true
			}
			return 200, true
		},
	},
	{
		name: "entries/:seq", action: "entry.read", roles: []auth.Role{auditor}, scoped: true,
		req: func(f matrixFixture, _ matrixCaller, t matrixTarget) (string, string, any) {
			return "GET", "/v1/entries/" + t.pick(fmt.Sprint(f.inSeq), fmt.Sprint(f.outSeq), "1099511627776"), nil
		},
		want: visibleOr404,
	},
	{
		// Proofs are open to every auditor and read no entry contents: not
		// recorded unless denied.
		name: "proofs", action: "proof.inclusion", roles: []auth.Role{auditor}, scoped: true,
		req: func(f matrixFixture, _ matrixCaller, t matrixTarget) (string, string, any) {
			seq := t.pick(fmt.Sprint(f.inSeq), fmt.Sprint(f.outSeq), "1099511627776")
			return "GET", fmt.Sprintf("/v1/ledger/proofs/inclusion?seq=%s&tree_size=%d", seq, f.treeSize), nil
		},
		want: func(_ matrixCaller, t matrixTarget) (int, bool) {
			if t == targetMissing {
				return 400, false
			}
			return 200, false
		},
	},
	{
		name: "checkpoint", action: "checkpoint.read", roles: []auth.Role{auditor, finance, privacy, admin},
		req: func(matrixFixture, matrixCaller, matrixTarget) (string, string, any) {
			return "GET", "/v1/ledger/checkpoint", nil
		},
		want: func(matrixCaller, matrixTarget) (int, bool) { return 200, false },
	},
}

// answersWithTransactions reports whether a 200 answer of ep lists the
// transactions of its target.
func (ep matrixEndpoint) answersWithTransactions() bool {
	switch ep.name {
	case "list", "get", "disclose", "cards/search":
		return true
	}
	return false
}

// TestAccessMatrix runs every caller against every endpoint and target and
// checks the status, the access entry it produced (or that it produced
// none), that 404s for out-of-scope and missing records are the same
// bytes, and that masked answers hold no personal data.
func TestAccessMatrix(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	f := matrixFixture{
		inSeq:  viewsPost(h, map[string]any{"transaction_id": "pay_in"}),
		outSeq: viewsPost(h, map[string]any{"transaction_id": "pay_out", "merchant_id": "m_garage", "card": viewsCard(viewsOtherPAN)}),
	}
	f.treeSize = h.node.Ledger.Size()
	pr, revoked, err := h.srv.Principals().Create(ctx, auth.CLIActor, "revoked_auditor", auth.RoleAuditor, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.Principals().Revoke(ctx, auth.CLIActor, pr.ID); err != nil {
		t.Fatal(err)
	}

	callers := []matrixCaller{
		{name: "auditor", role: auditor, all: true},
		{name: "auditor_m1", role: auditor},
		{name: "finance", role: finance, all: true},
		{name: "finance_m1", role: finance},
		{name: "privacy", role: privacy, all: true},
		{name: "admin", role: admin, all: true},
		{name: "no token", token: "", anon: true},
		{name: "revoked token", token: revoked, anon: true},
		{name: "garbage token", token: "ptk_not-a-real-token", anon: true},
		{name: "malformed token", token: "garbage", anon: true},
	}
	for i, c := range callers {
		if !c.anon {
			callers[i].token = c.name
		}
	}

	for _, ep := range matrixEndpoints {
		targets := []matrixTarget{targetIn}
		if ep.scoped {
			targets = []matrixTarget{targetIn, targetOut, targetMissing}
		}
		for _, c := range callers {
			bodies404 := map[matrixTarget]string{}
			for _, tg := range targets {
				name := fmt.Sprintf("%s/%s/%s", ep.name, c.name, tg)
				wantStatus, recorded := 0, true
				switch {
				case c.anon:
					wantStatus = 401
				case !roleIn(c.role, ep.roles):
					wantStatus = 403
				default:
					wantStatus, recorded = ep.want(c, tg)
				}
				method, path, body := ep.req(f, c, tg)
				size := h.node.Ledger.Size()
				r := h.do(c.token, method, path, body)
				if r.Status != wantStatus {
					t.Errorf("%s: status %d, want %d: %s", name, r.Status, wantStatus, r.Body)
					continue
				}
				if wantStatus >= 400 {
					if code := r.errorCode(t); code == "" {
						t.Errorf("%s: error body without a code: %s", name, r.Body)
					}
				}
				if wantStatus == 404 {
					bodies404[tg] = string(r.Body)
				}
				if ep.masked && r.Status == 200 {
					viewsAssertMasked(t, r.Body)
				}
				if r.Status == 200 && ep.answersWithTransactions() {
					for _, tx := range []string{"pay_in", "pay_out"} {
						shown := strings.Contains(string(r.Body), `"`+tx+`"`)
						if want := tg.visible(c) && tx == tg.pick("pay_in", "pay_out", ""); shown != want {
							t.Errorf("%s: %s shown = %v, want %v: %s", name, tx, shown, want, r.Body)
						}
					}
				}
				matrixCheckAccess(t, h, name, size, recorded, c, ep.action, wantStatus)
			}
			if in, out := bodies404[targetOut], bodies404[targetMissing]; in != "" && out != "" && in != out {
				t.Errorf("%s/%s: out-of-scope 404 %s differs from missing 404 %s", ep.name, c.name, in, out)
			}
		}
	}
	h.assertNoCardholderData(testPAN, viewsOtherPAN, viewsUnseenPAN, testName, testEmail)
}

func roleIn(r auth.Role, roles []auth.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// matrixCheckAccess checks that a request appended exactly one access
// entry describing it when recorded, and nothing otherwise.
func matrixCheckAccess(t *testing.T, h *harness, name string, sizeBefore uint64, recorded bool, c matrixCaller, action string, status int) {
	t.Helper()
	size := h.node.Ledger.Size()
	if !recorded {
		if size != sizeBefore {
			t.Errorf("%s: appended %d entries, want none", name, size-sizeBefore)
		}
		return
	}
	if size != sizeBefore+1 {
		t.Errorf("%s: appended %d entries, want one access entry", name, size-sizeBefore)
		return
	}
	_, a := viewsLastAccess(t, h)
	wantActor, wantResult := "anonymous", "success"
	if !c.anon {
		wantActor = h.ids[c.name]
	}
	if status >= 400 {
		wantResult = "failure"
	}
	if a.ActorID != wantActor || a.Action != action || a.Result != wantResult || a.Status != status || a.OriginIP == "" {
		t.Errorf("%s: access entry %+v, want actor %s action %s result %s status %d", name, a, wantActor, action, wantResult, status)
	}
	if !c.anon && (a.Role != string(c.role) || a.ActorName != c.name) {
		t.Errorf("%s: access entry names %s (%s), want %s (%s)", name, a.ActorName, a.Role, c.name, c.role)
	}
	if status == 200 && (action == "transaction.read" || action == "transaction.disclose") && len(a.Merchants) != 1 {
		t.Errorf("%s: a read of one transaction names merchants %v", name, a.Merchants)
	}
	if strings.Contains(a.Resource, testPAN) || strings.Contains(a.Resource, viewsOtherPAN) || strings.Contains(a.Resource, viewsUnseenPAN) {
		t.Errorf("%s: resource %q holds a card number", name, a.Resource)
	}
}

// TestAccessMatrixCoversRoutes keeps the matrix honest: every route that
// reads ledger data is in it with the roles routes.go admits.
func TestAccessMatrixCoversRoutes(t *testing.T) {
	h := newHarness(t)
	routes := strings.Join(h.srv.Routes(), "\n")
	for _, want := range []string{
		"GET /v1/transactions", "GET /v1/transactions/:id", "POST /v1/transactions/:id/disclose", "POST /v1/cards/search",
		"GET /v1/access-log", "GET /v1/entries/:seq", "GET /v1/ledger/proofs/inclusion", "GET /v1/ledger/checkpoint",
	} {
		if !strings.Contains(routes+"\n", want+"\n") {
			t.Errorf("route %s is gone; update the matrix", want)
		}
	}
}
