package swarmboot_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package has a doc comment saying what
// it owns.
func TestPackageDocs(t *testing.T) {
	documented := map[string]bool{} // dir → has a package doc
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		documented[dir] = documented[dir] || (f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(documented) < 5 {
		t.Fatalf("found only %d packages; is the test running from the module root?", len(documented))
	}
	for dir, ok := range documented {
		if !ok {
			t.Errorf("package in %s has no package doc comment", dir)
		}
	}
}

// TestBinariesLinkNoTestCode keeps test support out of what ships: the
// swarmboot and swarmboot-agent binaries must not depend on the testing
// package (test helpers live in *test packages imported only by tests).
func TestBinariesLinkNoTestCode(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"./cmd/swarmboot", "./cmd/swarmboot-agent"} {
		out, err := exec.Command("go", "list", "-deps", bin).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", bin, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 20 {
			t.Fatalf("go list -deps %s listed only %d packages", bin, len(deps))
		}
		for _, d := range deps {
			if d == "testing" || strings.HasSuffix(d, "test") && strings.HasPrefix(d, "github.com/swarmboot/") {
				t.Errorf("%s depends on %s: move what it uses into a package without test support", bin, d)
			}
		}
	}
}
