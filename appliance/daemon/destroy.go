package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/fleet"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// DefaultDestroyDrain bounds a destroy's drain of one swarm node: the
// manager's drain and its tasks leaving.
const DefaultDestroyDrain = 2 * time.Minute

// destroyRevokeWait bounds the removal of a destroyed VM's swarm node.
const destroyRevokeWait = 20 * time.Second

// destroyPlan is a checked destroy: its VMs in order, their members, and
// which manager is the swarm's last.
type destroyPlan struct {
	vms     []vsphere.VM
	members map[string]fleet.Member
	last    map[string]bool // VM → its manager is the last live one
	drain   time.Duration
}

func (d *Daemon) planDestroy(ctx context.Context, req admin.DestroyRequest) (*destroyPlan, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", admin.ErrDecode, err)
	}
	if d.vc == nil {
		return nil, errors.New("destroy: the appliance has no vCenter (it runs without --site): there are no VMs to destroy")
	}
	select {
	case <-d.vc.done:
	default:
		return nil, errors.New("destroy: the appliance is still applying the site to vCenter: run destroy again once it is done (see its log: site applied)")
	}
	vms, err := d.vc.fleet.Targets(ctx, fleet.Selection{Groups: req.Groups, Names: req.Names})
	if err != nil {
		return nil, err
	}
	members, err := fleet.Members(d.st, func(node string) (api.Report, bool) {
		rep, _, ok := d.api.LastReport(node)
		return rep, ok
	})
	if err != nil {
		return nil, err
	}
	if err := fleet.CheckManagers(vms, members, req.Force); err != nil {
		return nil, err
	}
	fleet.DestroyOrder(vms, members, d.opsVia(ctx, members))
	p := &destroyPlan{vms: vms, members: members, last: map[string]bool{}, drain: DefaultDestroyDrain}
	if w, _ := req.DrainDuration(); w > 0 {
		p.drain = w
	}
	live := 0
	for _, m := range members {
		if m.Role == api.RoleManager && m.NodeID != "" && !m.Revoked {
			live++
		}
	}
	for _, vm := range vms {
		if m, ok := members[vm.Name]; ok && m.Role == api.RoleManager && m.NodeID != "" && !m.Revoked {
			live--
			p.last[vm.Name] = live == 0
		}
	}
	return p, nil
}

// opsVia is the VM of the manager whose agent last pushed the swarm (the
// node operations go through it), "" when unknown.
func (d *Daemon) opsVia(ctx context.Context, members map[string]fleet.Member) string {
	info, err := d.api.CurrentSwarm(ctx)
	if err != nil || info.From == "" {
		return ""
	}
	node, _, _ := strings.Cut(info.From, " ")
	for vm, m := range members {
		if m.Node == node {
			return vm
		}
	}
	return ""
}

func (p *destroyPlan) lines() []string {
	out := make([]string, 0, len(p.vms))
	for _, vm := range p.vms {
		out = append(out, fmt.Sprintf("- vm %q (group %s, %s): power off and delete; %s", vm.Name, vm.Group, vm.PowerState,
			fleet.SwarmPlan(vm, p.members, true, p.last[vm.Name])))
	}
	return out
}

// PlanDestroy says what a destroy would do, in order (admin.Destroyer).
func (d *Daemon) PlanDestroy(ctx context.Context, req admin.DestroyRequest) ([]string, error) {
	p, err := d.planDestroy(ctx, req)
	if err != nil {
		return nil, err
	}
	return p.lines(), nil
}

// StartDestroy checks a destroy and runs it on Run's context (a roll and
// a destroy do not run at once): per VM, it drains the swarm node
// through a manager, deletes the VM, then revokes the node, which removes
// its swarm node (admin.Destroyer).
func (d *Daemon) StartDestroy(ctx context.Context, req admin.DestroyRequest) (<-chan admin.DestroyLine, error) {
	p, err := d.planDestroy(ctx, req)
	if err != nil {
		return nil, err
	}
	runCtx, err := d.claimRotation()
	if errors.Is(err, admin.ErrRotationRunning) {
		return nil, fmt.Errorf("%w: see swarmboot rotate status; wait for it to end, then destroy", admin.ErrDestroyRunning)
	}
	if err != nil {
		return nil, err
	}
	ch := make(chan admin.DestroyLine, 256)
	send := func(vm, step, msg string) {
		d.log.Info("destroy: "+msg, "vm", vm, "step", step)
		select {
		case ch <- admin.DestroyLine{Time: time.Now().UTC(), VM: vm, Step: step, Message: msg}:
		default:
		}
	}
	go func() {
		defer close(ch)
		n, err := d.runDestroy(runCtx, p, send)
		end := admin.DestroyLine{Time: time.Now().UTC(), Step: "end", End: true,
			Message: fmt.Sprintf("%d of %d VM(s) destroyed", n, len(p.vms))}
		if err != nil {
			end.Error = fmt.Sprintf("%v (destroyed %d of %d; run destroy again)", err, n, len(p.vms))
		}
		d.releaseRotation()
		select {
		case ch <- end:
		case <-time.After(5 * time.Second):
		}
	}()
	return ch, nil
}

func (d *Daemon) runDestroy(ctx context.Context, p *destroyPlan, send func(vm, step, msg string)) (int, error) {
	for i, vm := range p.vms {
		m, enrolled := p.members[vm.Name]
		live := enrolled && !m.Revoked && m.NodeID != "" && m.Active
		if live && !p.last[vm.Name] {
			send(vm.Name, "drain", d.destroyDrain(ctx, m.NodeID, p.drain))
		}
		if _, err := d.vc.fleet.Destroy(ctx, []vsphere.VM{vm}); err != nil {
			return i, err
		}
		send(vm.Name, "delete", "VM powered off and deleted")
		switch {
		case !enrolled:
			send(vm.Name, "swarm", "never enrolled: no swarm node, no certificate")
		case m.Revoked:
			send(vm.Name, "swarm", "node "+m.Node+" was revoked before: its swarm node is left as it is")
		case p.last[vm.Name]:
			// No manager is left to remove it: the swarm went with it.
			if err := d.api.RevokeCert(m.Node); err != nil {
				return i + 1, fmt.Errorf("revoke node %s: %w", m.Node, err)
			}
			send(vm.Name, "revoke", fmt.Sprintf("certificate revoked; swarm node %s was the swarm's last manager: the swarm is gone with it", m.NodeID))
		default:
			rctx, cancel := context.WithTimeout(ctx, destroyRevokeWait)
			note, err := d.api.RevokeNode(rctx, m.Node)
			cancel()
			if err != nil {
				return i + 1, fmt.Errorf("revoke node %s: %w", m.Node, err)
			}
			send(vm.Name, "revoke", "certificate revoked; "+note)
		}
	}
	return len(p.vms), nil
}

// destroyDrain drains nodeID through a manager and waits, up to wait,
// for its tasks to leave; it says how that went (a failure does not stop
// the destroy: the VM goes anyway).
func (d *Daemon) destroyDrain(ctx context.Context, nodeID string, wait time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start, first := time.Now(), -1
	if err := d.api.SetAvailability(ctx, nodeID, api.AvailabilityDrain); err != nil {
		return fmt.Sprintf("swarm node %s not drained (%v): deleting the VM anyway, its tasks are rescheduled once the swarm sees it down", nodeID, err)
	}
	for {
		info, err := d.api.CurrentSwarm(ctx)
		known, tasks := false, 0
		if err == nil {
			for _, n := range info.Nodes {
				if n.ID == nodeID {
					known, tasks = n.TasksKnown, n.Tasks
				}
			}
		}
		if !known {
			return fmt.Sprintf("swarm node %s drained (its tasks could not be counted: not waited for)", nodeID)
		}
		if first < 0 {
			first = tasks
		}
		if tasks == 0 {
			return fmt.Sprintf("swarm node %s drained, no tasks left (%d when drained; waited %s)", nodeID, first, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return fmt.Sprintf("swarm node %s drained, %d task(s) still there after %s: deleting the VM anyway", nodeID, tasks, wait)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
