package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeSetup: the README's first screen has exactly two set-up
// commands, run the service and run the tests, and the test command is
// the one CI runs and needs only Go (no cgo, so no -race).
func TestReadmeSetup(t *testing.T) {
	readme := readRepoFile(t, "README.md")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(readme)
	if block == nil {
		t.Fatal("README.md has no sh block")
	}
	lines := strings.Split(strings.TrimSpace(block[1]), "\n")
	want := []string{"go run ./cmd/paytrail serve", "go test ./..."}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("README's first commands are %q, want %q", lines, want)
	}
	for _, s := range []string{"go build -o paytrail ./cmd/paytrail", "Ctrl-C", "--help", "version"} {
		if !strings.Contains(readme, s) {
			t.Errorf("README.md does not mention %q", s)
		}
	}
	// CLI examples use the built binary, whose exit codes are real.
	if regexp.MustCompile(`go run \./cmd/paytrail (verify|bench|principal|keys|reconcile)`).MatchString(readme) {
		t.Errorf("README.md runs a CLI command through go run, which maps exit 2 to 1")
	}

	ci := readRepoFile(t, ".ci/run")
	if !regexp.MustCompile(`(?m)^go test \./\.\.\.$`).MatchString(ci) {
		t.Errorf(".ci/run does not run the README's test command")
	}
	if !regexp.MustCompile(`(?s)command -v gcc .*command -v cc.*CGO_ENABLED=1 go test -race`).MatchString(ci) {
		t.Errorf(".ci/run does not run -race only where a C compiler exists")
	}
	if regexp.MustCompile(`(?m)^go test -race`).MatchString(ci) {
		t.Errorf(".ci/run runs -race unconditionally")
	}
}

// TestBackupCommandsWriteOwnerOnlyFiles: the documented backup commands
// set umask 077 before they write, so the archives (keys among them) are
// mode 0600 whatever the shell's umask.
func TestBackupCommandsWriteOwnerOnlyFiles(t *testing.T) {
	ops := readRepoFile(t, "docs/operations.md")
	i := strings.Index(ops, "## Backup and restore")
	if i < 0 {
		t.Fatal("docs/operations.md has no backup section")
	}
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(ops[i:], -1) {
		cmds := block[1]
		tar := strings.Index(cmds, "tar ")
		if tar < 0 || !strings.Contains(cmds, "-c") {
			continue
		}
		if u := strings.Index(cmds, "umask 077"); u < 0 || u > tar {
			t.Errorf("a backup block writes with tar before umask 077:\n%s", cmds)
		}
	}
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
