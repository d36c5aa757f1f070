package cli

import (
	"context"
	"sync"
	"testing"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
)

func TestRotateDrainTimeoutHelp(t *testing.T) {
	t.Parallel()
	helpTeaches(t, map[string][]string{
		"rotate --help": {"--drain-timeout", "waiting for 3 tasks to leave lab-w1", "stop_grace_period", "docker node ps", "could not be counted"},
	})
}

// planCapture is a running appliance's roller that keeps the requests it
// was asked to plan.
type planCapture struct {
	mu   sync.Mutex
	reqs []admin.RotateRequest
}

func (p *planCapture) PlanRotation(_ context.Context, req admin.RotateRequest) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, req)
	return []string{"w1: drain, image new, reset, activate"}, nil
}

func (p *planCapture) StartRotation(context.Context, admin.RotateRequest) (<-chan admin.RotateLine, error) {
	return nil, admin.ErrRotationRunning
}

func (p *planCapture) RotationRunning() bool { return false }

// --drain-timeout reaches the appliance as the request's drain_timeout;
// without it the field stays empty (the appliance's default).
func TestRotateDrainTimeoutFlag(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	st, _ := enrolltest.Open(t)
	pc := &planCapture{}
	l, err := admin.Listen(admin.SocketPath(data))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&admin.Server{Ops: &admin.Ops{Store: st, Rotator: pc}}).Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	for _, args := range [][]string{
		{"rotate", "--group", "workers", "--image", "new", "--drain-timeout", "7m", "--dry-run"},
		{"rotate", "--group", "workers", "--image", "new", "--dry-run"},
	} {
		if code, out, errs := runCLI(t, data, args...); code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", args, code, out, errs)
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(pc.reqs) != 2 || pc.reqs[0].DrainTimeout != "7m0s" || pc.reqs[1].DrainTimeout != "" {
		t.Fatalf("requests %+v: want drain_timeout 7m0s, then none", pc.reqs)
	}
	if d, err := pc.reqs[0].DrainDuration(); err != nil || d.Minutes() != 7 {
		t.Errorf("DrainDuration %v, %v", d, err)
	}
}
