package webhook

import (
	"os"
	"path/filepath"
	"testing"
)

// Fixtures is fixtures for the external test package.
var Fixtures = fixtures

// fixtures returns the sample bodies in testdata whose names start with
// prefix ("" for all of them).
func fixtures(tb testing.TB, prefix string) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", prefix+"*.json"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no %s fixtures: %v", prefix, err)
	}
	var bodies [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return bodies
}
