package testlog

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestBufferConcurrent writes lines from many goroutines while reading
// (the race detector checks the locking) and finds every line once.
func TestBufferConcurrent(t *testing.T) {
	t.Parallel()
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(got) != 800 {
		t.Fatalf("%d lines, want 800", len(got))
	}
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l] {
			t.Errorf("line %q twice", l)
		}
		seen[l] = true
	}
	if !seen["w0-0"] || !seen["w7-99"] {
		t.Errorf("lines missing: %v", got[:3])
	}
}
