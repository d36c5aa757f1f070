package admin

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
)

// fakeDestroyer plays a destroy: a line per VM, then the End line.
type fakeDestroyer struct {
	mu  sync.Mutex
	got []DestroyRequest
}

func (f *fakeDestroyer) PlanDestroy(_ context.Context, req DestroyRequest) ([]string, error) {
	if !req.Force && len(req.Groups) == 1 && req.Groups[0] == "managers" {
		return nil, errors.New("destroy: m1 would take away the last manager(s): pass --force")
	}
	return []string{`- vm "w1": power off and delete; swarm node w1id is drained, then removed`}, nil
}

func (f *fakeDestroyer) StartDestroy(_ context.Context, req DestroyRequest) (<-chan DestroyLine, error) {
	f.mu.Lock()
	f.got = append(f.got, req)
	f.mu.Unlock()
	ch := make(chan DestroyLine, 4)
	go func() {
		ch <- DestroyLine{VM: "w1", Step: "drain", Message: "drained"}
		time.Sleep(200 * time.Millisecond)
		ch <- DestroyLine{VM: "w1", Step: "delete", Message: "deleted"}
		ch <- DestroyLine{Step: "end", End: true, Message: "1 of 1 VM(s) destroyed"}
		close(ch)
	}()
	return ch, nil
}

// TestDestroyOverSocket: a dry run answers the plan, a refusal is one
// clear error, a destroy streams its lines to the End line (past the
// server's call timeouts) with the request as sent, and an appliance
// without a Destroyer refuses with ErrNeedsAppliance.
func TestDestroyOverSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, _ := enrolltest.Open(t)
	fd := &fakeDestroyer{}
	sock := dir + "/" + SocketName
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ops := &Ops{Store: st, Destroyer: fd}
	srv := &Server{Ops: ops, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	c := NewClient(sock)
	defer c.CloseIdle()

	lines, err := c.PlanDestroy(ctx, DestroyRequest{Groups: []string{"workers"}})
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "drained, then removed") {
		t.Fatalf("plan: %q, %v", lines, err)
	}
	if _, err := c.PlanDestroy(ctx, DestroyRequest{Groups: []string{"managers"}}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("plan of the last manager: %v, want the refusal", err)
	}
	if _, err := c.PlanDestroy(ctx, DestroyRequest{DrainTimeout: "soon"}); err == nil || !strings.Contains(err.Error(), "drain_timeout") {
		t.Fatalf("bad drain_timeout: %v", err)
	}
	var got []string
	end, err := c.Destroy(ctx, DestroyRequest{Names: []string{"w1"}, Force: true, DrainTimeout: "30s"}, func(l DestroyLine) {
		got = append(got, l.VM+" "+l.Step)
	})
	if err != nil || end == nil || end.Message != "1 of 1 VM(s) destroyed" || strings.Join(got, ",") != "w1 drain,w1 delete, end" {
		t.Fatalf("destroy: lines %q, end %+v, %v", got, end, err)
	}
	fd.mu.Lock()
	req := fd.got[0]
	fd.mu.Unlock()
	if !req.Force || req.DrainTimeout != "30s" || req.Names[0] != "w1" || req.DryRun {
		t.Errorf("the appliance got %+v", req)
	}
	ops.Destroyer = nil
	if _, err := c.Destroy(ctx, DestroyRequest{}, func(DestroyLine) {}); err == nil || !strings.Contains(err.Error(), "running appliance") {
		t.Errorf("destroy without a Destroyer: %v, want needs the running appliance", err)
	}
}

func FuzzDestroyRequest(f *testing.F) {
	for _, s := range []string{
		`{"groups":["workers"],"force":true}`, `{"names":["w1","w2"],"drain_timeout":"2m"}`, `{}`, `{"names":[""]}`,
		`{"groups":["a\u0007"]}`, `{"drain_timeout":"-1s"}`, `{"names":["w1"]}{"names":["w2"]}`, `{"dry_run":true,"x":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, ok := fuzzDecode[DestroyRequest](t, body)
		if !ok {
			return
		}
		if len(body) > MaxRequest || len(r.Groups)+len(r.Names) > maxDestroyNames {
			t.Fatalf("accepted an oversized request %q", body)
		}
		for _, n := range append(append([]string{}, r.Groups...), r.Names...) {
			if n == "" || len(n) > maxName || strings.IndexFunc(n, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
				t.Fatalf("accepted name %q", n)
			}
		}
		if d, err := r.DrainDuration(); err != nil || d < 0 {
			t.Fatalf("accepted drain_timeout %q: %v", r.DrainTimeout, err)
		}
	})
}
