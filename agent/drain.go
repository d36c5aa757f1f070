package agent

import (
	"context"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

const (
	// drainEvery is how often a manager's agent reports while a node it
	// listed drained still has tasks: a task stopping is no node event,
	// and the appliance's roll waits for the count to reach 0.
	drainEvery = 1500 * time.Millisecond
	// drainCap bounds those reports per drained node (a task that never
	// stops must not keep the agent reporting every second).
	drainCap = 10 * time.Minute
)

// drainWatch is what the last report's node list said of drained nodes
// with tasks left: when each was first seen so (the cap counts from
// there). Guarded by Agent.mu.
type drainWatch map[string]time.Time

// noteDrains keeps the drained nodes with tasks left from a report's node
// list (none when the report is not a manager's) and wakes drainLoop when
// one is within the cap.
func (a *Agent) noteDrains(r api.Report, now time.Time) {
	a.mu.Lock()
	old := a.drains
	a.drains = drainWatch{}
	if r.JoinTokens != nil && r.Swarm.State == "active" && r.Swarm.ControlAvailable {
		for _, n := range r.JoinTokens.Nodes {
			if n.Availability != api.AvailabilityDrain || !n.TasksKnown || n.Tasks == 0 {
				continue
			}
			first, ok := old[n.ID]
			if !ok {
				first = now
			}
			a.drains[n.ID] = first
		}
	}
	pending := a.drainPendingLocked(now)
	a.mu.Unlock()
	if pending {
		select {
		case a.drainKick <- struct{}{}:
		default:
		}
	}
}

// drainPending says whether a drained node the last report listed still
// has tasks and has been watched for less than the cap.
func (a *Agent) drainPending(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.drainPendingLocked(now)
}

func (a *Agent) drainPendingLocked(now time.Time) bool {
	for _, first := range a.drains {
		if now.Sub(first) < a.drainCap {
			return true
		}
	}
	return false
}

// drainLoop reports every drainEvery while drainPending, so that a
// drained node's count reaching 0 is with the appliance within about
// drainEvery, not a heartbeat later. It stops when no drained node has
// tasks left, when the node stops being a manager (its report carries no
// node list), at the cap, and after a failed report (the heartbeat's
// report starts it again).
func (a *Agent) drainLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.drainKick:
		}
		for a.drainPending(time.Now()) {
			if sleep(ctx, a.drainEvery) != nil {
				return
			}
			if !a.drainPending(time.Now()) {
				break
			}
			a.cfg.Log.Debug("report while a drained node's tasks stop")
			if err := a.report(ctx); err != nil {
				if ctx.Err() == nil {
					a.cfg.Log.Warn("report while a drained node's tasks stop failed; waiting for the heartbeat", "err", err)
				}
				select { // the failed report's own kick: not a reason to go on
				case <-a.drainKick:
				default:
				}
				break
			}
		}
	}
}
