package api

import (
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// consolePrefix starts the web console's routes.
const consolePrefix = "/console/"

// openAPIFile is the OpenAPI document, relative to this package.
var openAPIFile = filepath.Join("..", "docs", "openapi.yaml")

// openAPIDoc is just enough of an OpenAPI 3.0 document to compare it with
// the router: its version, its security schemes and, for each path, the
// operations by lower-case HTTP method.
type openAPIDoc struct {
	OpenAPI    string                                 `yaml:"openapi"`
	Paths      map[string]map[string]openAPIOperation `yaml:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `yaml:"type"`
			Scheme string `yaml:"scheme"`
		} `yaml:"securitySchemes"`
		Parameters map[string]map[string]any `yaml:"parameters"`
	} `yaml:"components"`
}

type openAPIOperation struct {
	OperationID string           `yaml:"operationId"`
	Parameters  []map[string]any `yaml:"parameters"`
	Responses   map[string]any   `yaml:"responses"`
	// Status is "planned" for an operation whose handler is still a stub
	// answering 501, and empty otherwise.
	Status string `yaml:"x-paytrail-status"`
}

// openAPIMethods are the keys of a path item that are operations; the
// others (parameters, summary, ...) are not.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPIPath turns a Gin route path into an OpenAPI path template:
// ":name" segments become "{name}" and "*name" catch-alls become "{name}".
func openAPIPath(ginPath string) string {
	segs := strings.Split(ginPath, "/")
	for i, s := range segs {
		if len(s) > 1 && (s[0] == ':' || s[0] == '*') {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

func TestOpenAPIPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/healthz", "/healthz"},
		{"/v1/webhooks/:source", "/v1/webhooks/{source}"},
		{"/v1/transactions/:id/disclose", "/v1/transactions/{id}/disclose"},
		{"/v1/reconciliations/:id/exceptions.csv", "/v1/reconciliations/{id}/exceptions.csv"},
		{"/v1/ledger/checkpoints/:size", "/v1/ledger/checkpoints/{size}"},
		{"/static/*filepath", "/static/{filepath}"},
		{"/", "/"},
		{"/a:b", "/a:b"},
	} {
		if got := openAPIPath(tc.in); got != tc.want {
			t.Errorf("openAPIPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func loadOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatalf("failed to read the OpenAPI document: %v", err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("failed to parse %s: %v", openAPIFile, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("%s: openapi is %q, want 3.0.x", openAPIFile, doc.OpenAPI)
	}
	if len(doc.Paths) == 0 {
		t.Fatalf("%s documents no paths", openAPIFile)
	}
	return &doc
}

// TestOpenAPIMatchesRoutes checks that docs/openapi.yaml documents every
// route the server registers, and nothing else. The web console's routes
// (under /console/) are HTML pages and form posts for people, not API
// operations: they are deliberately left out of the OpenAPI document and
// listed in docs/console.md instead.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	h := newHarness(t)

	routes := map[string]bool{}
	for _, r := range h.srv.Routes() {
		method, path, ok := strings.Cut(r, " ")
		if !ok {
			t.Fatalf("Routes() returned %q, want \"METHOD path\"", r)
		}
		if strings.HasPrefix(path, consolePrefix) {
			continue // HTML for people, listed in docs/console.md (TestConsoleRoutesDocumented)
		}
		routes[method+" "+openAPIPath(path)] = true
	}
	if len(routes) == 0 {
		t.Fatal("the server registers no routes")
	}

	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			if slices.Contains(openAPIMethods, key) {
				documented[strings.ToUpper(key)+" "+path] = true
			}
		}
	}

	for _, r := range slices.Sorted(maps.Keys(routes)) {
		if !documented[r] {
			t.Errorf("route %s is not documented in %s", r, openAPIFile)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(documented)) {
		if !routes[d] {
			t.Errorf("%s documents %s, which is not a route", openAPIFile, d)
		}
	}
}

// TestOpenAPIOperations checks what a client generator needs of each
// operation: a unique operationId, at least one response, and a path
// parameter declared for every {name} in the path. It also checks that
// bearer authentication is declared.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("components.securitySchemes.bearerAuth = %+v, want type http, scheme bearer", s)
	}
	params := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if !slices.Contains(openAPIMethods, method) {
				continue
			}
			where := strings.ToUpper(method) + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q is also used by %s", where, op.OperationID, prev)
			} else {
				ids[op.OperationID] = where
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for _, m := range params.FindAllStringSubmatch(path, -1) {
				if !declaresPathParam(doc, op.Parameters, m[1]) {
					t.Errorf("%s: path parameter %q is not declared", where, m[1])
				}
			}
		}
	}
}

// declaresPathParam reports whether params declares the required path
// parameter name, inline or through a reference to components.parameters.
func declaresPathParam(doc *openAPIDoc, params []map[string]any, name string) bool {
	for _, p := range params {
		if ref, ok := p["$ref"].(string); ok {
			id, ok := strings.CutPrefix(ref, "#/components/parameters/")
			if !ok {
				continue
			}
			p = doc.Components.Parameters[id]
		}
		if p["in"] == "path" && p["name"] == name && p["required"] == true {
			return true
		}
	}
	return false
}

// openAPIProbeCallers are the callers TestOpenAPIStatusesMatchServer sends
// each request as: no token, then the harness principals of every role and
// a scoped auditor.
var openAPIProbeCallers = []string{"", "auditor", "auditor_m1", "finance", "privacy", "admin"}

// openAPIProbePath fills an OpenAPI path template with values that name
// nothing in a fresh ledger, except that numbers are small.
func openAPIProbePath(path string) string {
	return regexp.MustCompile(`\{([^}]+)\}`).ReplaceAllStringFunc(path, func(p string) string {
		switch p {
		case "{seq}", "{size}":
			return "1"
		}
		return "nosuch"
	})
}

// TestOpenAPIStatusesMatchServer sends every documented operation, without
// a body or query parameters, as every kind of caller to a real server,
// and checks that each status it answers is one the document lists for
// that operation. It also checks the implementation status: an operation
// is marked x-paytrail-status: planned exactly when it documents 501 and
// the server answers 501 to some caller, so a stub cannot be documented as
// implemented, nor an implemented operation left marked planned.
func TestOpenAPIStatusesMatchServer(t *testing.T) {
	doc := loadOpenAPI(t)
	h := newHarness(t)
	for _, path := range slices.Sorted(maps.Keys(doc.Paths)) {
		for _, method := range openAPIMethods {
			op, ok := doc.Paths[path][method]
			if !ok {
				continue
			}
			where := strings.ToUpper(method) + " " + path
			_, documents501 := op.Responses["501"]
			planned := op.Status == "planned"
			if op.Status != "" && !planned {
				t.Errorf("%s: x-paytrail-status is %q, want planned or nothing", where, op.Status)
			}
			if planned != documents501 {
				t.Errorf("%s: x-paytrail-status planned is %v but a 501 answer is documented: %v", where, planned, documents501)
			}
			answered501 := false
			for _, as := range openAPIProbeCallers {
				r := h.do(as, strings.ToUpper(method), openAPIProbePath(path), nil)
				if r.Status == http.StatusNotImplemented {
					answered501 = true
				}
				if _, ok := op.Responses[strconv.Itoa(r.Status)]; !ok {
					t.Errorf("%s as %q: the server answered %d, which is not documented: %s", where, as, r.Status, r.Body)
				}
			}
			if answered501 != planned {
				t.Errorf("%s: the server answers 501 to some caller: %v, but x-paytrail-status planned is %v", where, answered501, planned)
			}
		}
	}
}
