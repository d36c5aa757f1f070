//go:build !race

package fleet

import (
	"context"
	"testing"
)

// TestParallelApplyConverges creates 24 VMs 8 at a time. It is built only
// without -race: govmomi's simulator itself races on concurrent VM creates
// and destroys (see helpers_test.go), which -race would report.
func TestParallelApplyConverges(t *testing.T) {
	e := newEnv(t)
	e.site.Groups[1].Count = 23
	f := e.fleet()
	f.Parallel = 8
	p, err := f.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Apply(context.Background(), p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Created) != 24 {
		t.Fatalf("created %d, want 24", len(r.Created))
	}
	e.checkConverged(t)
	e.site.Groups[1].Count = 3
	f.destroyParallel = 8
	p, err = f.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r, err = f.Apply(context.Background(), p, ApplyOptions{}); err != nil || len(r.Deleted) != 20 {
		t.Fatalf("shrink: %+v, %v", r, err)
	}
	e.checkConverged(t)
}
