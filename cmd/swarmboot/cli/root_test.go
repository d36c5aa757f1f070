package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestVersionAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"version"}, nil, &out, &errb); code != 0 {
		t.Fatalf("version: exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "swarmboot ") {
		t.Fatalf("version printed %q", out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"--help"}, nil, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	if !strings.Contains(out.String(), "Typical flow") {
		t.Fatalf("--help does not teach the flow:\n%s", out.String())
	}
}

func TestUnknownCommandFails(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"no-such-command"}, nil, &out, &errb); code == 0 {
		t.Fatal("unknown command exited 0")
	}
	if !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("stderr %q does not name the problem", errb.String())
	}
}

func TestBadLogLevel(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"--log-level", "loud", "version"}, nil, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "--log-level") {
		t.Fatalf("stderr %q", errb.String())
	}
}
