package rotate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// DefaultDrainWait bounds how long a roll waits, once the manager lists a
// node drained, for the node's swarm tasks to stop and leave it.
const DefaultDrainWait = 5 * time.Minute

// ErrTasksLeft is a drained node that still had swarm tasks when the
// drain wait ran out; the roll stops there and the node stays drained.
var ErrTasksLeft = errors.New("tasks did not leave the drained node")

// waitTasks waits until the manager's list shows no swarm task left on
// the drained node of pl (Docker's drain only starts moving them: each
// task gets its service's stop_grace_period, and is replaced elsewhere),
// so the reset does not kill them. It tells each new count ("waiting for
// 3 tasks to leave lab-w1", a wait line) and records when they are gone.
// When the manager's agent does not count tasks (older than this roll),
// it records so and returns at once: unknown is not 0, but it must not
// block the roll. After wait it returns an
// error wrapping ErrTasksLeft that says what to do.
func (g *roll) waitTasks(ctx context.Context, i int, pl Planned, wait time.Duration) error {
	r := g.r
	start := r.now()
	if wait <= 0 {
		wait = DefaultDrainWait
	}
	dctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(r.poll())
	defer t.Stop()
	last, seen := -1, "nothing yet"
	for {
		info, err := r.Nodes.CurrentSwarm(dctx)
		var sn *api.SwarmNode
		if err == nil {
			sn = listed(info, pl.NodeID)
		}
		switch {
		case err != nil:
			seen = "the swarm: " + err.Error()
		case sn == nil:
			seen = "node not in the manager's list"
		case !sn.TasksKnown:
			g.node(i, stepDrain, fmt.Sprintf("the tasks on %s could not be counted (the manager's swarmboot-agent does not send task counts: roll the managers onto a newer image); going on without waiting for them to leave", pl.VM))
			return nil
		case sn.Tasks == 0:
			if last > 0 {
				g.node(i, stepDrain, fmt.Sprintf("no tasks left on %s (waited %s)", pl.VM, r.now().Sub(start).Round(time.Second)))
			}
			return nil
		default:
			if sn.Tasks != last {
				g.say(pl.VM, stepWait, fmt.Sprintf("waiting for %s to leave %s", plural(sn.Tasks, "task"), pl.VM))
				last = sn.Tasks
			}
			seen = plural(sn.Tasks, "task") + " still there"
		}
		select {
		case <-dctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("no sign of the tasks leaving %s (last seen: %s): %w", pl.VM, seen, ctx.Err())
			}
			if last <= 0 {
				return fmt.Errorf("%w: the manager's list did not show the tasks on swarm node %s within the drain wait of %s (last seen: %s); see docker node ps %s, and run the same swarmboot rotate again",
					ErrTasksLeft, pl.NodeID, wait, seen, pl.NodeID)
			}
			return fmt.Errorf("%w: %s still on swarm node %s after the drain wait of %s (stopping containers get their service's stop_grace_period; one ignoring SIGTERM waits it out). "+
				"See them with docker node ps %s. Give them longer with --drain-timeout %s, or move them yourself (docker service update --stop-grace-period, docker service scale), then run the same swarmboot rotate again",
				ErrTasksLeft, plural(last, "task"), pl.NodeID, wait, pl.NodeID, 2*wait)
		case <-t.C:
		}
	}
}

// plural is "1 task", "3 tasks".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
