package rotate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// What a roll does to a node.
const (
	ActionRoll     = "roll"     // drain, image, reset, wait, activate
	ActionSkip     = "skip"     // on the target version and active already
	ActionActivate = "activate" // on the target version, drained by an earlier roll: activate it
	ActionKeep     = "keep"     // on the target version, drained by someone else: left drained
)

// Plan is a roll's order and what it does to each VM.
type Plan struct {
	Groups []store.RotationGroup
	Nodes  []Planned // in roll order
	// Drained are nodes an earlier roll drained and left so that this
	// roll does not cover: the record keeps them, so the roll that
	// covers them again knows it may activate them.
	Drained []store.RotationNode
}

// Planned is one VM in a Plan.
type Planned struct {
	VM, Node, Group, Role, MAC string
	NodeID                     string
	Leader                     bool
	Image                      string // the target build name
	OldImage                   string // the VM's image before
	From, To                   string // image versions
	Action                     string
	Why                        string
	ISO                        bool // boots from an ISO: step 2 pushes it and changes the CD-ROM
}

// Lines describe the plan for people, one line per node in roll order.
func (p *Plan) Lines() []string {
	var out []string
	n := 0
	for _, pl := range p.Nodes {
		who := fmt.Sprintf("%s (%s, group %s)", pl.VM, pl.Role, pl.Group)
		if pl.Leader {
			who = fmt.Sprintf("%s (%s, leader, group %s)", pl.VM, pl.Role, pl.Group)
		}
		switch pl.Action {
		case ActionRoll:
			n++
			how := fmt.Sprintf("boot image %s (was %s)", pl.Image, orNone(pl.OldImage))
			if pl.ISO {
				how = fmt.Sprintf("push %s.iso to the datastore and put it in the CD-ROM (was %s)", pl.Image, orNone(pl.OldImage))
			}
			out = append(out, fmt.Sprintf("%d. %s: %s → %s: drain, %s, reset, wait for %s, swarm active and ready, activate",
				n, who, orNone(pl.From), pl.To, how, pl.To))
		case ActionActivate:
			n++
			out = append(out, fmt.Sprintf("%d. %s: on %s already, drained by the last roll: activate", n, who, pl.To))
		default:
			out = append(out, fmt.Sprintf("-  %s: %s", who, pl.Why))
		}
	}
	for _, n := range p.Drained {
		out = append(out, fmt.Sprintf("-  %s (%s, group %s): %s", n.VM, n.Role, n.Group, n.Error))
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Plan checks a roll and orders it; a roll that cannot go ahead is an
// error wrapping ErrRefused that says what to do.
func (r *Roller) Plan(ctx context.Context, req Request) (*Plan, error) {
	if len(req.Targets) == 0 {
		return nil, fmt.Errorf("%w: name the groups to roll and their image", ErrRefused)
	}
	info, err := r.Nodes.CurrentSwarm(ctx)
	if errors.Is(err, swarm.ErrNoSwarm) {
		return nil, fmt.Errorf("%w: the swarm's node list is not known yet (no manager has reported to the appliance): wait for a manager's heartbeat and run it again", ErrRefused)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the swarm's node list: %v", ErrRefused, err)
	}
	p := &Plan{}
	var vms []store.VM
	var nodes []store.Node
	var prev *store.Rotation
	err = r.Store.View(func(tx *store.Tx) error {
		var err error
		if vms, err = tx.VMs(); err != nil {
			return err
		}
		if nodes, err = tx.Nodes(); err != nil {
			return err
		}
		if prev, err = tx.Rotation(); errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range req.Targets {
		if seen[t.Group] {
			return nil, fmt.Errorf("%w: group %s named twice", ErrRefused, t.Group)
		}
		seen[t.Group] = true
		iso := r.isISO(t.Group, vms)
		if iso && r.ISO == nil {
			return nil, fmt.Errorf("%w: group %s boots from an ISO: a roll needs the new ISO pushed to the datastore and each VM's CD-ROM changed, which this appliance cannot do (it has no vCenter). Roll it by hand, one VM at a time: swarmboot push the new ISO, drain the node (docker node update --availability drain), point the VM's CD-ROM at the new ISO in vCenter, reset it, activate it when it is back; or make the group boot: pxe",
				ErrISO, t.Group)
		}
		version, err := r.checkImage(t, iso)
		if err != nil {
			return nil, err
		}
		p.Groups = append(p.Groups, store.RotationGroup{Name: t.Group, Image: t.Image, Version: version})
		n := 0
		for _, vm := range vms {
			if vm.Group != t.Group {
				continue
			}
			n++
			pl, err := r.planVM(vm, t, version, nodes, info, prev)
			pl.ISO = iso
			if err != nil {
				return nil, err
			}
			p.Nodes = append(p.Nodes, pl)
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: group %s has no VM in the store: apply the site first (swarmboot apply), or check the group's name", ErrRefused, t.Group)
		}
	}
	sort.SliceStable(p.Nodes, func(i, j int) bool { return less(p.Nodes[i], p.Nodes[j]) })
	if prev != nil {
		for _, n := range prev.Nodes {
			if n.Drained && !slices.ContainsFunc(p.Nodes, func(pl Planned) bool { return pl.VM == n.VM }) {
				n.Step, n.Error = stepSkipped, "left drained by an earlier roll, not part of this one: roll its group again to resume it"
				p.Drained = append(p.Drained, n)
			}
		}
	}
	if err := checkQuorum(p, info, req.AllowQuorumLoss); err != nil {
		return nil, err
	}
	return p, nil
}

// less orders workers before managers, the leader last, then by name.
func less(a, b Planned) bool {
	if (a.Role == api.RoleManager) != (b.Role == api.RoleManager) {
		return a.Role != api.RoleManager
	}
	if a.Leader != b.Leader {
		return !a.Leader
	}
	return a.VM < b.VM
}

// isISO says whether group boots from an ISO: the site says so, or
// (without a site) one of its VMs records an image that is not a build.
func (r *Roller) isISO(group string, vms []store.VM) bool {
	if r.Boot != nil {
		switch r.Boot(group) {
		case "iso":
			return true
		case "pxe":
			return false
		}
	}
	for _, vm := range vms {
		if vm.Group == group && vm.Image != "" && !site.IsBuildName(vm.Image) {
			return true
		}
	}
	return false
}

// checkImage refuses an image the VMs could not boot and returns its
// version.
func (r *Roller) checkImage(t Target, iso bool) (string, error) {
	if !site.IsBuildName(t.Image) {
		return "", fmt.Errorf("%w: group %s: image %q is not a build name (a name from swarmboot build --name NAME, no path, no .iso): rotate boots the nodes into a build", ErrRefused, t.Group, t.Image)
	}
	files := []string{t.Image + "-kernel", t.Image + "-initrd.img"}
	if iso {
		files = []string{t.Image + ".iso"}
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(r.Artifacts, f)); err != nil {
			return "", fmt.Errorf("%w: group %s: image %s has no %s in the artifacts directory %s: build it there (swarmboot build --name %s -o %s)",
				ErrRefused, t.Group, t.Image, f, r.Artifacts, t.Image, r.Artifacts)
		}
	}
	v, err := r.version(t.Image)
	if err != nil {
		return "", fmt.Errorf("%w: group %s: %v", ErrRefused, t.Group, err)
	}
	return v, nil
}

// planVM decides what the roll does to vm.
func (r *Roller) planVM(vm store.VM, t Target, version string, nodes []store.Node, info swarm.Info, prev *store.Rotation) (Planned, error) {
	pl := Planned{VM: vm.Name, Group: vm.Group, Role: vm.Role, MAC: vm.MAC, Image: t.Image, OldImage: vm.Image, To: version, Action: ActionRoll}
	node := nodeOf(vm, nodes)
	if node == nil {
		return pl, fmt.Errorf("%w: VM %s has no enrolled node: it never came up, so a roll could not tell when it is back. Fix it first (swarmboot events %s), or leave group %s out", ErrRefused, vm.Name, orNone(vm.MAC), vm.Group)
	}
	if !node.Revoked.IsZero() {
		return pl, fmt.Errorf("%w: node %s (VM %s) is revoked, so it cannot report after a reboot: re-admit it (swarmboot token create --vm %s) or leave group %s out", ErrRefused, node.Name, vm.Name, vm.Name, vm.Group)
	}
	pl.Node = node.Name
	rep, _, ok := r.Nodes.LastReport(node.Name)
	if !ok {
		return pl, fmt.Errorf("%w: node %s (VM %s) has never reported: fix it first, or leave group %s out", ErrRefused, node.Name, vm.Name, vm.Group)
	}
	pl.From, pl.NodeID = rep.ImageVersion, rep.Swarm.NodeID
	if pl.NodeID == "" {
		pl.NodeID = node.SwarmNodeID
	}
	if pl.NodeID == "" || rep.Swarm.State != "active" {
		return pl, fmt.Errorf("%w: node %s (VM %s) is not in the swarm (its last report: swarm %s): a roll could not drain it; fix it first, or leave group %s out",
			ErrRefused, node.Name, vm.Name, orNone(rep.Swarm.State), vm.Group)
	}
	sn := listed(info, pl.NodeID)
	if sn == nil {
		return pl, fmt.Errorf("%w: node %s (VM %s, swarm node %s) is not in the manager's node list (%s): wait for the next manager heartbeat, or fix the node first",
			ErrRefused, node.Name, vm.Name, pl.NodeID, info)
	}
	pl.Leader = sn.Leader
	if sn.Role != "" {
		pl.Role = sn.Role
	}
	if pl.From != version {
		return pl, nil
	}
	drainedByUs := false
	if prev != nil {
		for _, n := range prev.Nodes {
			if n.VM == vm.Name && n.Drained {
				drainedByUs = true
			}
		}
	}
	switch {
	case sn.Availability != api.AvailabilityDrain && sn.State == api.NodeReady:
		pl.Action, pl.Why = ActionSkip, "on "+version+" already, "+sn.State+" and "+orNone(sn.Availability)+": skipped"
	case drainedByUs:
		pl.Action = ActionActivate
	case sn.Availability == api.AvailabilityDrain:
		pl.Action, pl.Why = ActionKeep, "on "+version+" already, drained by someone else: left drained (activate it with docker node update --availability active "+pl.NodeID+")"
	default:
		// On the version, active, but not ready: reboot it like the others.
	}
	return pl, nil
}

// nodeOf is the enrolled node of vm: the one named after it (a token made
// for the VM), else the newest seen that enrolled with its MAC (a
// netbooted VM's kernel-line token names the MAC: its node is
// mac-<hex>); a revoked node only when there is no other.
func nodeOf(vm store.VM, nodes []store.Node) *store.Node {
	var best *store.Node
	for i := range nodes {
		n := &nodes[i]
		if n.Name == vm.Name || n.VM == vm.Name {
			return n
		}
		if vm.MAC == "" || !slices.Contains(n.MACs, store.NormalizeMAC(vm.MAC)) {
			continue
		}
		if best == nil || (!best.Revoked.IsZero() && n.Revoked.IsZero()) ||
			(best.Revoked.IsZero() == n.Revoked.IsZero() && n.LastSeen.After(best.LastSeen)) {
			best = n
		}
	}
	return best
}

// listed is the manager's entry for nodeID, or nil.
func listed(info swarm.Info, nodeID string) *api.SwarmNode {
	for i := range info.Nodes {
		if info.Nodes[i].ID == nodeID {
			return &info.Nodes[i]
		}
	}
	return nil
}

// quorumLoss says why taking nodeID (a manager) down now would cost the
// swarm its raft quorum, or "" when it would not.
func quorumLoss(info swarm.Info, nodeID string) string {
	total, up := 0, 0
	var down []string
	for _, n := range info.Nodes {
		if n.Role != api.RoleManager {
			continue
		}
		total++
		if n.State == api.NodeReady && n.ID != nodeID {
			up++
		} else if n.ID != nodeID {
			down = append(down, orNone(n.Hostname))
		}
	}
	need := total/2 + 1
	if up >= need {
		return ""
	}
	why := fmt.Sprintf("with it down %d of %d managers would be up, and the swarm's raft quorum needs %d", up, total, need)
	if len(down) > 0 {
		why += " (down already: " + strings.Join(down, ", ") + ")"
	}
	return why
}

// checkQuorum refuses a plan that would roll a manager the swarm cannot
// spare.
func checkQuorum(p *Plan, info swarm.Info, allow bool) error {
	if allow {
		return nil
	}
	for _, pl := range p.Nodes {
		if pl.Action != ActionRoll || pl.Role != api.RoleManager {
			continue
		}
		if why := quorumLoss(info, pl.NodeID); why != "" {
			return fmt.Errorf("%w: manager %s: %s. Add managers first (three managers tolerate one down), leave its group out, or pass --allow-quorum-loss to accept a swarm without a control plane while it reboots",
				ErrQuorum, pl.VM, why)
		}
	}
	return nil
}
