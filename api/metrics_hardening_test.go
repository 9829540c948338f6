package api

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// metricsLabelRE finds the method, route and status labels of /metrics.
var metricsLabelRE = regexp.MustCompile(`(method|route|status)="([^"]*)"`)

// TestMetricsLabelsAreFixedSets: a stranger sending unique methods, paths
// and ids must not be able to grow /metrics (each distinct label value is
// a new series, kept forever) or to write into it: methods outside the
// standard set count as "other", paths as their route template or
// "unmatched".
func TestMetricsLabelsAreFixedSets(t *testing.T) {
	h := newHarness(t)
	hostile := func(i int) {
		h.do("", fmt.Sprintf("M%05dX", i), "/v1/transactions", nil)
		h.do("", fmt.Sprintf("Q%05dZ", i), fmt.Sprintf("/nowhere/%d", i), nil)
		h.do("", "GET", fmt.Sprintf("/v1/unknown/p%05d", i), nil)
		h.do("", "GET", fmt.Sprintf("/v1/transactions/tx%05d", i), nil)
		h.do("", "POST", fmt.Sprintf("/v1/webhooks/src%05d", i), nil)
	}
	metrics := func() string {
		t.Helper()
		r := h.do("", "GET", "/metrics", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("/metrics: %d", r.Status)
		}
		return string(r.Body)
	}
	for i := range 20 {
		hostile(i)
	}
	for _, m := range []string{"4111.1111.1111.1111", "4111_1111_1111_1111", "GETX", "get"} {
		h.do("", m, "/v1/transactions", nil)
	}
	before := len(metrics())
	for i := 20; i < 300; i++ {
		hostile(i)
	}
	after := metrics()
	// Counter values grow by a few digits, never by a series.
	if len(after) > before+2048 {
		t.Errorf("/metrics grew from %d to %d bytes over 1400 hostile requests", before, len(after))
	}

	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "other"}
	routes := map[string]bool{"unmatched": true}
	for _, r := range h.srv.Routes() {
		routes[strings.SplitN(r, " ", 2)[1]] = true
	}
	bad := map[string]bool{}
	for _, m := range metricsLabelRE.FindAllStringSubmatch(after, -1) {
		name, value := m[1], m[2]
		switch {
		case name == "method" && !slices.Contains(methods, value),
			name == "route" && !routes[value],
			name == "status" && (len(value) != 3 || http.StatusText(atoiOr(value, 0)) == ""):
			bad[m[0]] = true
		}
	}
	if len(bad) > 0 {
		some := slices.Sorted(maps.Keys(bad))
		t.Errorf("%d label values not from the fixed sets, such as %q", len(bad), some[:min(5, len(some))])
	}
	for _, leak := range []string{"M00001X", "Q00001Z", "nowhere", "p00001", "tx00001", "src00001", "4111.1111", "4111_1111", "GETX", `"get"`} {
		if strings.Contains(after, leak) {
			t.Errorf("/metrics holds %q from a request", leak)
		}
	}
}

func atoiOr(s string, def int) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return def
	}
	return n
}
