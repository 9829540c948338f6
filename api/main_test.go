package api

import (
	"flag"
	"os"
	"testing"
)

// TestMain closes what tests of this package share across the binary:
// the browser of the console's browser tests and the benchmark's server.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	if consoleBench.close != nil {
		consoleBench.close()
	}
	os.Exit(code)
}
