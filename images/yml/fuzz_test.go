package yml

import (
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzLoad feeds arbitrary bytes to the parser: it must never panic, and
// whatever it accepts must survive Marshal and Parse unchanged.
func FuzzLoad(f *testing.F) {
	if full, err := os.ReadFile("testdata/full.yml"); err == nil {
		f.Add(full)
	}
	for _, s := range []string{
		"kernel:\n  image: k:1\n",
		"services:\n  - name: a\n    image: a:1\n    uid: 0x10\n",
		"a: &x [1]\nb: *x\n",
		"files:\n  - path: a\n    contents: \"\"\n",
		"init: [\"a:1\", \"b@sha256:0000000000000000000000000000000000000000000000000000000000000000\"]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yml", data)
		if err != nil {
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("marshal of accepted input failed: %v", err)
		}
		c2, err := Parse("again.yml", out)
		if err != nil {
			t.Fatalf("re-parse failed: %v\ninput:\n%q\nmarshalled:\n%s", err, data, out)
		}
		out2, err := Marshal(c2)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("round trip differs:\n%s\n---\n%s", out, out2)
		}
		for _, img := range c.Services {
			_, _, _ = RuntimeConfigIDs(img, ImageConfigLabel{}, v1Config, IDMap(c))
		}
	})
}

var v1Config v1.Config
