package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// TokenSource is one place an enrollment token may be found.
type TokenSource interface {
	// Token returns the token, "" when this source has none.
	Token() (string, error)
	String() string
}

// CmdlineToken reads swarmboot.token= from the kernel command line (set by
// a per-machine iPXE script).
type CmdlineToken struct{ Path string } // default /proc/cmdline

func (c CmdlineToken) String() string { return "kernel command line" }

// Token implements TokenSource.
func (c CmdlineToken) Token() (string, error) {
	p := c.Path
	if p == "" {
		p = "/proc/cmdline"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "swarmboot.token="); ok {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", nil
}

// FileToken reads a token from a file (first line).
type FileToken struct{ Path string }

func (f FileToken) String() string { return "file " + f.Path }

// Token implements TokenSource.
func (f FileToken) Token() (string, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// FindToken asks the sources in order and returns the first token found
// and the source's name. Errors of a source are collected, not fatal.
func FindToken(sources ...TokenSource) (token, from string, err error) {
	var errs []error
	for _, s := range sources {
		t, err := s.Token()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		if t != "" {
			return t, s.String(), nil
		}
	}
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.String()
	}
	errs = append([]error{fmt.Errorf("no enrollment token in %s: create one with `swarmboot token create` on the appliance", strings.Join(names, ", "))}, errs...)
	return "", "", errors.Join(errs...)
}
