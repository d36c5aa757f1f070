package timeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestKindsDocumented reads timeline.go: every Kind constant has a value
// of its own, in the lower-case-hyphen form the store and `swarmboot
// events` show, and every kind the appliance writes says which package
// writes it and what it means.
func TestKindsDocumented(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "timeline.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	form := regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
	seen := map[string]string{}
	groups := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		appliance := g.Doc != nil && strings.Contains(g.Doc.Text(), "the appliance records")
		if appliance {
			groups++
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Kind" {
				continue
			}
			name := vs.Names[0].Name
			v, err := strconv.Unquote(vs.Values[0].(*ast.BasicLit).Value)
			if err != nil || !form.MatchString(v) {
				t.Errorf("%s = %q: want lower-case words joined by hyphens", name, v)
			}
			if other, dup := seen[v]; dup {
				t.Errorf("%s and %s are both %q", name, other, v)
			}
			seen[v] = name
			if appliance && (vs.Comment == nil || !regexp.MustCompile(`^appliance/[a-z]+: \S`).MatchString(vs.Comment.Text())) {
				t.Errorf("%s: an appliance kind wants a comment \"appliance/PKG: what it means\"", name)
			}
		}
	}
	// The appliance's kinds: the ones its store events use.
	for _, v := range []string{"vm-created", "token", "enroll", "enroll-refused", "swarm-init", "swarm-join", "report",
		"renew", "revoke", "swarm-op", "rotate"} {
		if _, ok := seen[v]; !ok {
			t.Errorf("no Kind constant for the appliance's %q", v)
		}
	}
	if groups != 1 {
		t.Errorf("%d const blocks documented as \"the appliance records\", want 1", groups)
	}
	if len(seen) < 20 {
		t.Errorf("found %d Kind constants in timeline.go: parsing broken?", len(seen))
	}
}
