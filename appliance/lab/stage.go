package lab

import (
	"context"
	"strings"

	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// Stage fetches pkgs and, transitively, the library packages (lib*) they
// depend on, and extracts them all into dir. Dependencies that are not
// libraries (adduser, iptables, …) are left out: name them in pkgs when the
// image needs them.
func Stage(ctx context.Context, dir string, pkgs ...string) ([]string, error) {
	seen := map[string]bool{}
	queue := append([]string{}, pkgs...)
	var staged []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		deb, err := debfix.Fetch(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := debfix.Extract(ctx, deb, dir); err != nil {
			return nil, err
		}
		staged = append(staged, p)
		for _, field := range []string{"Pre-Depends", "Depends"} {
			v, err := debfix.Field(ctx, deb, field)
			if err != nil {
				return nil, err
			}
			for _, d := range depNames(v) {
				if strings.HasPrefix(d, "lib") && !seen[d] {
					queue = append(queue, d)
				}
			}
		}
	}
	return staged, nil
}

// depNames returns the first alternative's package name of every clause of
// a Depends field.
func depNames(field string) []string {
	var out []string
	for _, clause := range strings.Split(field, ",") {
		alt, _, _ := strings.Cut(clause, "|")
		f := strings.Fields(alt)
		if len(f) == 0 {
			continue
		}
		name, _, _ := strings.Cut(f[0], ":") // libfoo:any
		out = append(out, name)
	}
	return out
}
