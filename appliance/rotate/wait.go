package rotate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// waitFor calls check every Poll until it is done, fails, or ctx ends;
// then the error says what was waited for and what was seen last. Every
// WaitNote meanwhile it tells note (when not nil) what it waits for.
func (r *Roller) waitFor(ctx context.Context, what string, note func(string), check func() (done bool, seen string, err error)) error {
	t := time.NewTicker(r.poll())
	defer t.Stop()
	seen := "nothing yet"
	every := r.WaitNote
	if every <= 0 {
		every = DefaultWaitNote
	}
	next := time.Now().Add(every)
	for {
		if note != nil && time.Now().After(next) {
			note(fmt.Sprintf("still waiting for %s (last seen: %s)", what, seen))
			next = time.Now().Add(every)
		}
		done, s, err := check()
		if s != "" {
			seen = s
		}
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no sign of %s (last seen: %s): %w", what, seen, ctx.Err())
		case <-t.C:
		}
	}
}

// waitListed waits until the manager lists nodeID with availability.
func (r *Roller) waitListed(ctx context.Context, nodeID, availability string, note func(string)) error {
	return r.waitFor(ctx, "the manager listing node "+nodeID+" "+availability, note, func() (bool, string, error) {
		info, err := r.Nodes.CurrentSwarm(ctx)
		if err != nil {
			return false, "the swarm: " + err.Error(), nil
		}
		sn := listed(info, nodeID)
		if sn == nil {
			return false, "node not in the manager's list", nil
		}
		return sn.Availability == availability, "listed " + sn.State + ", " + orNone(sn.Availability), nil
	})
}

// waitBack waits until the reset node reports the target version, swarm
// active with its node ID, and the manager lists it ready. A report made
// well after the reset (Grace) with another version, or as another swarm
// node, ends the wait with an error: waiting longer would not change it.
func (r *Roller) waitBack(ctx context.Context, pl Planned, resetAt time.Time, note func(string)) error {
	what := fmt.Sprintf("%s reporting %s, swarm active as %s and listed ready", pl.VM, pl.To, pl.NodeID)
	return r.waitFor(ctx, what, note, func() (bool, string, error) {
		rep, at, ok := r.Nodes.LastReport(pl.Node)
		if !ok || !at.After(resetAt) {
			return false, "no report since the reset", nil
		}
		seen := fmt.Sprintf("reported %s, swarm %s %s at %s", orNone(rep.ImageVersion), orNone(rep.Swarm.State), rep.Swarm.NodeID, at.UTC().Format(time.TimeOnly))
		settled := at.After(resetAt.Add(r.grace()))
		if rep.ImageVersion != pl.To {
			if settled {
				return false, seen, fmt.Errorf("came back with image version %s, want %s: the booter served another image (check %s.version and the VM's image: swarmboot events %s)",
					orNone(rep.ImageVersion), pl.To, pl.Image, pl.VM)
			}
			return false, seen, nil
		}
		if rep.Swarm.State != "active" {
			return false, seen, nil
		}
		if rep.Swarm.NodeID != pl.NodeID {
			return false, seen, fmt.Errorf("came back as swarm node %s, not %s: its swarm state did not survive the reboot (is /var/lib/docker on its persistent disk?); the old node %s stays listed down: remove it with docker node rm %s",
				rep.Swarm.NodeID, pl.NodeID, pl.NodeID, pl.NodeID)
		}
		info, err := r.Nodes.CurrentSwarm(ctx)
		if errors.Is(err, swarm.ErrNoSwarm) || err != nil {
			return false, seen + "; the swarm's node list not known", nil
		}
		sn := listed(info, pl.NodeID)
		if sn == nil {
			return false, seen + "; not in the manager's list", nil
		}
		return sn.State == api.NodeReady, seen + "; listed " + sn.State, nil
	})
}
