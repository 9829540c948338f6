package ledger

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRepoRules enforces rules that matter as tests rather than review
// comments (STYLE.md 12): ledger writes are never NoSync, and only api/
// imports gin. (crypto/lint_test.go bans math/rand and Tink outside crypto/.)
func TestRepoRules(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/gin-gonic/") && !strings.HasPrefix(rel, "api/") {
				t.Errorf("%s imports %s: gin belongs in api/ only", rel, p)
			}
		}
		if strings.HasPrefix(rel, "ledger/") && !strings.HasSuffix(rel, "_test.go") && strings.Contains(string(src), "pebble.NoSync") {
			t.Errorf("%s uses pebble.NoSync: ledger writes must be synced", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
