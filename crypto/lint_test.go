package crypto

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

// goImports returns the import paths of every .go file under root for which
// keep(path) is true, keyed by file.
func goImports(t *testing.T, root string, keep func(path string, d fs.DirEntry) bool) map[string][]string {
	t.Helper()
	out := make(map[string][]string)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || !keep(path, d) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			// A file that does not parse fails its own package's build;
			// it is not this test's business.
			t.Logf("skipping %s: %v", path, err)
			return nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[path] = append(out[path], p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// TestBannedImports keeps randomness and key handling honest in this
// package: no math/rand (keys, ids and nonces come from crypto/rand or
// Tink), and no Tink cleartext keyset or test keyset access outside tests.
func TestBannedImports(t *testing.T) {
	banned := map[string]string{
		"math/rand":    "use crypto/rand",
		"math/rand/v2": "use crypto/rand",
		"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset": "keysets are only written wrapped by the master",
		"github.com/tink-crypto/tink-go/v2/testkeyset":              "test-only Tink API",
	}
	imports := goImports(t, ".", func(path string, _ fs.DirEntry) bool { return !strings.HasSuffix(path, "_test.go") })
	if len(imports) == 0 {
		t.Fatal("found no Go files")
	}
	for file, imps := range imports {
		for _, p := range imps {
			if why, ok := banned[p]; ok {
				t.Errorf("%s imports %s: %s", file, p, why)
			}
		}
	}
}

// TestTinkOnlyInCrypto enforces the design rule that nothing outside
// crypto/ imports Tink.
func TestTinkOnlyInCrypto(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Skipf("module root not found above crypto/: %v", err)
	}
	self, _ := filepath.Abs(".")
	imports := goImports(t, root, func(path string, _ fs.DirEntry) bool {
		return !strings.HasPrefix(path, self+string(filepath.Separator))
	})
	for file, imps := range imports {
		for _, p := range imps {
			if strings.HasPrefix(p, "github.com/tink-crypto/") {
				t.Errorf("%s imports %s: only crypto/ may use Tink", file, p)
			}
		}
	}
}
