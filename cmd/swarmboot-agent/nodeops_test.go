package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	swarmtypes "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// TestManagedNodeOps: in a swarm swarmboot made (a manager and a worker,
// real agents and dockerds), the appliance drains the worker, activates it
// again, is refused removing it while it is up, and revoking it takes it
// out of the swarm — each done by the manager's agent with its Docker
// API, checked on the manager's Docker API.
func TestManagedNodeOps(t *testing.T) {
	needLab(t)
	t.Parallel()
	logs := map[string]*lockedBuf{"dockerd": {}, "appliance": {}, "agent": {}, "console": {}}
	l := newLab(t, 63)
	a := startAppliance(t, nil, logs["appliance"])
	mgr := a.machine(t, l.add(logs["dockerd"]), "ops-m1", "manager", 31)
	wrk := a.machine(t, l.add(logs["dockerd"]), "ops-w1", "worker", 32)
	a.run(t, mgr, logs["console"], logs["agent"])
	a.run(t, wrk, logs["console"], logs["agent"])
	waitNodes(t, mgr.d, "a manager and a worker", func(n map[string]string) bool {
		return countReady(n, "manager") == 1 && countReady(n, "worker") == 1
	})
	id := nodeID(t, wrk.d)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	availability := func() swarmtypes.NodeAvailability {
		t.Helper()
		res, err := mgr.d.c.NodeInspect(ctx, id, client.NodeInspectOptions{})
		if err != nil {
			t.Fatalf("inspect %s on the manager: %v", id, err)
		}
		return res.Node.Spec.Availability
	}
	start := time.Now()
	if err := a.srv.SetAvailability(ctx, id, api.AvailabilityDrain); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if got := availability(); got != swarmtypes.NodeAvailabilityDrain {
		t.Fatalf("after drain the manager says %q", got)
	}
	t.Logf("drain took %v (heartbeat 400 ms)", time.Since(start).Round(time.Millisecond))
	if err := a.srv.SetAvailability(ctx, id, api.AvailabilityActive); err != nil {
		t.Fatalf("activate: %v", err)
	}
	if got := availability(); got != swarmtypes.NodeAvailabilityActive {
		t.Fatalf("after activate the manager says %q", got)
	}
	// Docker refuses to remove a node that is up without force: the
	// manager's words come back.
	if err := a.srv.Remove(ctx, id, false); err == nil || !strings.Contains(err.Error(), "ops-m1") || errors.Is(err, swarm.ErrNoNode) {
		t.Fatalf("remove without force of a live node: %v; want Docker's refusal through ops-m1", err)
	}
	if got := availability(); got != swarmtypes.NodeAvailabilityActive {
		t.Fatalf("after the refused remove the manager says %q", got)
	}

	// Revoking the worker removes its swarm node (remove-force).
	note, err := a.srv.RevokeNode(ctx, wrk.name)
	if err != nil || !strings.Contains(note, "swarm node "+id+" removed") {
		t.Fatalf("revoke: %q, %v", note, err)
	}
	if _, err := mgr.d.c.NodeInspect(ctx, id, client.NodeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("after revoke the manager still knows %s: %v", id, err)
	}
	// An operation on a node the swarm no longer has.
	if err := a.srv.SetAvailability(ctx, id, api.AvailabilityDrain); !errors.Is(err, swarm.ErrNoNode) {
		t.Fatalf("drain of a removed node: %v, want swarm.ErrNoNode", err)
	}
	if got := a.events(t, wrk.mac, "swarm-op"); got != 5 {
		t.Errorf("%d swarm-op events on the worker's timeline, want 5 (drain, activate, refused remove, remove, drain of the removed node)", got)
	}
	secrets := append(joinTokens(t, mgr.d), mgr.token, wrk.token)
	scanSecrets(t, logs, secrets, filepath.Join(mgr.dir, "state"), filepath.Join(wrk.dir, "state"))
}
