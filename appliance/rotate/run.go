package rotate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Steps of a node in store.RotationNode.Step and Progress.Step.
const (
	stepPending  = "pending"
	stepSkipped  = "skipped"
	stepDrain    = "drain"
	stepImage    = "image"
	stepReset    = "reset"
	stepBoot     = "boot"
	stepActivate = "activate"
	stepDone     = "done"
	stepFailed   = "failed"
	stepWait     = "wait" // progress only: still waiting, and for what
)

// EventKind is the kind of the store events (and timeline entries) a roll
// records for each node.
const EventKind = "rotate"

// Run plans the roll (Plan) and carries it out, one node at a time,
// recording its progress in the store and telling emit (nil → nobody)
// each step. It returns the roll as recorded; when a node fails or times
// out the roll stops there with an error wrapping ErrStopped whose text
// says what to do (the node stays drained). When ctx ends the roll is
// recorded as interrupted.
func (r *Roller) Run(ctx context.Context, req Request, emit func(Progress)) (*store.Rotation, error) {
	if emit == nil {
		emit = func(Progress) {}
	}
	p, err := r.Plan(ctx, req)
	if err != nil {
		return nil, err
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := r.now().UTC()
	rot := &store.Rotation{ID: start.Format(time.RFC3339Nano), Groups: p.Groups, State: store.RotationRunning, Started: start}
	todo := 0
	for _, pl := range p.Nodes {
		n := store.RotationNode{VM: pl.VM, Node: pl.Node, Group: pl.Group, Role: pl.Role, NodeID: pl.NodeID,
			From: pl.From, To: pl.To, Step: stepPending}
		switch pl.Action {
		case ActionSkip, ActionKeep:
			n.Step, n.Error = stepSkipped, pl.Why
		case ActionActivate:
			n.Drained = true
			todo++
		default:
			todo++
		}
		rot.Nodes = append(rot.Nodes, n)
	}
	// After the plan's nodes, so rot.Nodes[i] is p.Nodes[i].
	rot.Nodes = append(rot.Nodes, p.Drained...)
	if err := r.save(rot, nil); err != nil {
		return nil, err
	}
	run := &roll{r: r, rot: rot, emit: emit}
	run.say("", "start", fmt.Sprintf("%d of %d nodes to roll, one at a time, at most %s each", todo, len(p.Nodes), timeout))
	for i, pl := range p.Nodes {
		if pl.Action == ActionSkip || pl.Action == ActionKeep {
			run.node(i, stepSkipped, pl.Why)
			continue
		}
		if err := run.one(ctx, req, i, pl, timeout); err != nil {
			return run.stop(ctx, i, err)
		}
	}
	rot.State, rot.Ended = store.RotationDone, r.now().UTC()
	rot.Message = fmt.Sprintf("%d nodes rolled, %d skipped", todo, len(p.Nodes)-todo)
	if err := r.save(rot, nil); err != nil {
		return rot, err
	}
	run.say("", "done", rot.Message)
	return rot, nil
}

// roll is one Run under way.
type roll struct {
	r    *Roller
	rot  *store.Rotation
	emit func(Progress)
}

// say tells emit and the log.
func (g *roll) say(vm, step, msg string) {
	p := Progress{Time: g.r.now().UTC(), VM: vm, Step: step, Message: msg}
	g.r.log().Info("rotate: "+msg, "vm", vm, "step", step)
	g.emit(p)
}

// node moves node i to step, records it with an event, and says so.
func (g *roll) node(i int, step, msg string) {
	n := &g.rot.Nodes[i]
	n.Step = step
	now := g.r.now().UTC()
	if step == stepDone || step == stepFailed {
		n.Ended = now
	}
	mac := ""
	_ = g.r.Store.View(func(tx *store.Tx) error {
		if vm, err := tx.VM(n.VM); err == nil {
			mac = vm.MAC
		}
		return nil
	})
	ev := &store.Event{Time: now, MAC: mac, VM: n.VM, Kind: EventKind, Detail: step + ": " + msg}
	if err := g.r.save(g.rot, ev); err != nil {
		g.r.log().Warn("rotate: record progress", "vm", n.VM, "err", err)
	}
	g.say(n.VM, step, msg)
}

// one rolls node i.
func (g *roll) one(ctx context.Context, req Request, i int, pl Planned, timeout time.Duration) error {
	r := g.r
	n := &g.rot.Nodes[i]
	n.Started = r.now().UTC()
	nctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	note := func(msg string) { g.say(pl.VM, stepWait, msg) }
	if pl.Action == ActionRoll {
		if pl.Role == api.RoleManager && !req.AllowQuorumLoss {
			info, err := r.Nodes.CurrentSwarm(nctx)
			if err != nil {
				return &nodeError{step: stepDrain, err: fmt.Errorf("the swarm's node list: %w", err)}
			}
			if why := quorumLoss(info, pl.NodeID); why != "" {
				return &nodeError{step: stepDrain, err: fmt.Errorf("%w: %s", ErrQuorum, why)}
			}
		}
		g.node(i, stepDrain, "draining swarm node "+pl.NodeID)
		if err := r.Swarm.SetAvailability(nctx, pl.NodeID, api.AvailabilityDrain); err != nil {
			return &nodeError{step: stepDrain, err: err}
		}
		n.Drained = true
		if err := r.waitListed(nctx, pl.NodeID, api.AvailabilityDrain, note); err != nil {
			return &nodeError{step: stepDrain, err: err}
		}
		if err := g.waitTasks(nctx, i, pl, req.DrainWait); err != nil {
			return &nodeError{step: stepDrain, err: err}
		}
		msg := fmt.Sprintf("drained; boot image %s (was %s)", pl.Image, orNone(pl.OldImage))
		if pl.ISO {
			msg = fmt.Sprintf("drained; pushing %s.iso to the datastore and into the CD-ROM (was %s)", pl.Image, orNone(pl.OldImage))
		}
		g.node(i, stepImage, msg)
		if err := r.setImage(nctx, pl); err != nil {
			return &nodeError{step: stepImage, err: err}
		}
		g.node(i, stepReset, "resetting the VM")
		if err := r.Machines.Reset(nctx, pl.VM); err != nil {
			return &nodeError{step: stepReset, err: err}
		}
		resetAt := r.now()
		g.node(i, stepBoot, fmt.Sprintf("reset; waiting for %s, swarm active as %s, listed ready", pl.To, pl.NodeID))
		if err := r.waitBack(nctx, pl, resetAt, note); err != nil {
			return &nodeError{step: stepBoot, err: err}
		}
	}
	if pl.Action == ActionActivate {
		// Resumed after its boot: it must be up and ready before it gets
		// work again.
		if err := r.waitBack(nctx, pl, time.Time{}, note); err != nil {
			return &nodeError{step: stepBoot, err: err}
		}
	}
	g.node(i, stepActivate, fmt.Sprintf("back on %s as %s, ready; activating", pl.To, pl.NodeID))
	if err := r.Swarm.SetAvailability(nctx, pl.NodeID, api.AvailabilityActive); err != nil {
		return &nodeError{step: stepActivate, err: err}
	}
	if err := r.waitListed(nctx, pl.NodeID, api.AvailabilityActive, note); err != nil {
		return &nodeError{step: stepActivate, err: err}
	}
	n.Drained = false
	g.node(i, stepDone, fmt.Sprintf("on %s, active (%s)", pl.To, r.now().Sub(n.Started).Round(time.Second)))
	return nil
}

// setImage makes the VM boot the target build at its next reset: a
// netbooted VM's store record (what the booter serves) and hypervisor
// marker name the build; an iso-boot VM gets the build's ISO in its
// CD-ROM, and the store records the ISO's datastore path as apply does.
func (r *Roller) setImage(ctx context.Context, pl Planned) error {
	image := pl.Image
	if pl.ISO {
		recorded, err := r.ISO.InsertISO(ctx, pl.VM, pl.Image)
		if err != nil {
			return err
		}
		image = recorded
	}
	err := r.Store.Update(func(tx *store.Tx) error {
		vm, err := tx.VM(pl.VM)
		if err != nil {
			return err
		}
		vm.Image = image
		return tx.PutVM(*vm)
	})
	if err != nil || pl.ISO {
		return err
	}
	return r.Machines.SetImage(ctx, pl.VM, pl.Image)
}

// nodeError is a node's failure at a step.
type nodeError struct {
	step string
	err  error
}

func (e *nodeError) Error() string { return e.step + ": " + e.err.Error() }
func (e *nodeError) Unwrap() error { return e.err }

// stop records node i's failure and the roll's end, and returns the error
// Run returns: what happened and what to do.
func (g *roll) stop(ctx context.Context, i int, err error) (*store.Rotation, error) {
	n := &g.rot.Nodes[i]
	step, cause := stepDrain, err
	var ne *nodeError
	if errors.As(err, &ne) {
		step, cause = ne.step, ne.err
	}
	var what string
	switch {
	case ctx.Err() != nil:
		what = fmt.Sprintf("%s: the roll was interrupted at step %s (the appliance is stopping)", n.VM, step)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTasksLeft):
		what = fmt.Sprintf("%s: timed out at step %s: %v", n.VM, step, cause)
	default:
		what = fmt.Sprintf("%s: failed at step %s: %v", n.VM, step, cause)
	}
	if n.Drained {
		what += fmt.Sprintf(". The node stays drained (swarm node %s). Look at it (swarmboot events %s, its console); when it is fixed, run the same swarmboot rotate again to resume (nodes on the new image are skipped), or take it back as it is with docker node update --availability active %s",
			n.NodeID, n.VM, n.NodeID)
	} else {
		what += ". Nothing was changed on this node; fix the cause and run the same swarmboot rotate again to resume"
	}
	n.Error = cause.Error()
	g.rot.Message = what
	g.rot.Ended = g.r.now().UTC()
	g.rot.State = store.RotationStopped
	if ctx.Err() != nil {
		g.rot.State = store.RotationInterrupted
	}
	g.node(i, stepFailed, cause.Error())
	g.say("", "stopped", what)
	return g.rot, fmt.Errorf("%w: %s", ErrStopped, what)
}

// save records rot, and ev when given, in one transaction.
func (r *Roller) save(rot *store.Rotation, ev *store.Event) error {
	return r.Store.Update(func(tx *store.Tx) error {
		if ev != nil && ev.MAC != "" {
			if err := tx.AppendEvent(*ev); err != nil {
				return err
			}
		}
		return tx.PutRotation(*rot)
	})
}
