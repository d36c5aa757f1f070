package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var errKilled = errors.New("killed")

// TestKilledApplyConverges kills apply at each stage of one VM's creation
// and re-runs it: the result must be exactly the site's VMs, each once,
// recorded, with exactly the one token in its guestinfo stored.
func TestKilledApplyConverges(t *testing.T) {
	for _, stage := range []string{"token-stored", "created", "recorded"} {
		t.Run(stage, func(t *testing.T) {
			e := newEnv(t)
			f := e.fleet()
			f.hook = func(vm, s string) error {
				if vm == "tf-sw-2" && s == stage {
					return errKilled
				}
				return nil
			}
			p, err := f.Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Apply(context.Background(), p, ApplyOptions{}); !errors.Is(err, errKilled) {
				t.Fatalf("apply killed at %s: err = %v", stage, err)
			}
			r := e.apply(t) // the re-run
			if stage != "token-stored" && len(r.Created) != 4-2 && len(r.Created)+len(r.PoweredOn) == 0 {
				t.Errorf("re-run did nothing: %+v", r)
			}
			e.checkConverged(t)
			if p := e.plan(t); p.HasChanges() {
				t.Errorf("plan after re-run has changes: %+v", p.Changes)
			}
		})
	}
}

// cancelAfter cancels the apply's context once n requests have been sent
// to vCenter (the n-th still goes out): a kill at an arbitrary point,
// including while vCenter runs a CreateVM task.
type cancelAfter struct {
	rt     http.RoundTripper
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	if atomic.AddInt64(&c.n, -1) == 0 {
		defer c.cancel()
	}
	return c.rt.RoundTrip(r)
}

// requestsOfApply counts the vCenter requests of an uninterrupted apply of
// newEnv's site.
func requestsOfApply(t *testing.T) int64 {
	e := newEnv(t)
	f := e.fleet()
	p, err := f.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hc := &e.vs.VC.Client.Client
	c := &cancelAfter{rt: hc.Transport, n: 1 << 40, cancel: func() {}}
	hc.Transport = c
	if _, err := f.Apply(context.Background(), p, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	return 1<<40 - atomic.LoadInt64(&c.n)
}

// TestCancelledApplyAtManyPointsConverges kills apply after n requests, n
// spread over a whole apply (counted first: the points move when apply
// needs fewer requests), and re-runs it.
func TestCancelledApplyAtManyPointsConverges(t *testing.T) {
	total := requestsOfApply(t)
	t.Logf("an apply of the site takes %d requests", total)
	var points []int64
	for i := int64(1); i <= 7; i++ {
		points = append(points, max(1, total*i/8))
	}
	for _, n := range points {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			f := e.fleet()
			p, err := f.Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hc := &e.vs.VC.Client.Client
			orig := hc.Transport
			hc.Transport = &cancelAfter{rt: orig, n: n, cancel: cancel}
			_, err = f.Apply(ctx, p, ApplyOptions{})
			hc.Transport = orig
			if err == nil {
				t.Errorf("apply of %d requests finished despite a kill after request %d", total, n)
			}
			time.Sleep(50 * time.Millisecond) // let vCenter finish tasks the killed run started
			r := e.apply(t)
			t.Logf("re-run: created %v, powered on %v, updated %v; adopted: %v", r.Created, r.PoweredOn, r.Updated, strings.Contains(e.logs.String(), "adopting"))
			e.checkConverged(t)
		})
	}
}

// TestStalePlanAdoptsVMsOfAKilledRun applies a plan made before a killed
// run's creates landed: vCenter answers DuplicateName and apply adopts the
// VMs it owns instead of failing or duplicating them.
func TestStalePlanAdoptsVMsOfAKilledRun(t *testing.T) {
	e := newEnv(t)
	f := e.fleet()
	stale, err := f.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.hook = func(vm, s string) error {
		if vm == "tf-sw-2" && s == "created" {
			return errKilled
		}
		return nil
	}
	p, _ := f.Plan(context.Background())
	if _, err := f.Apply(context.Background(), p, ApplyOptions{}); !errors.Is(err, errKilled) {
		t.Fatalf("first run: %v", err)
	}
	f.hook = nil
	stale.Pushes = nil // the killed run pushed it
	r, err := f.Apply(context.Background(), stale, ApplyOptions{})
	if err != nil {
		t.Fatalf("apply of the stale plan: %v", err)
	}
	if !strings.Contains(e.logs.String(), "adopting") || len(r.Created) != 4 {
		t.Errorf("no VM adopted (result %+v)", r)
	}
	e.checkConverged(t)
}
