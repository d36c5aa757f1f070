package fleet

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Member is a VM's enrolled node and its swarm node as swarmboot last
// heard of them (the node's last report).
type Member struct {
	VM      string
	Node    string // the store's node name ("" never enrolled)
	NodeID  string // swarm node ID ("" never in a swarm)
	Role    string // manager | worker (the report's, else the node's)
	Active  bool   // the last report said the swarm is active
	Revoked bool
}

// Members reads every enrolled node of a VM from st, keyed by VM name;
// last, when not nil, gives a newer report than the store's (the running
// agent API's memory).
func Members(st *store.Store, last func(node string) (api.Report, bool)) (map[string]Member, error) {
	var ns []store.Node
	err := st.View(func(tx *store.Tx) error {
		var err error
		ns, err = tx.Nodes()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]Member{}
	for _, n := range ns {
		if n.VM == "" {
			continue
		}
		m := Member{VM: n.VM, Node: n.Name, Role: n.Role, NodeID: n.SwarmNodeID, Revoked: !n.Revoked.IsZero()}
		var rep api.Report
		ok := false
		if last != nil {
			rep, ok = last(n.Name)
		}
		if !ok && len(n.LastReport) > 0 {
			ok = json.Unmarshal(n.LastReport, &rep) == nil
		}
		if ok {
			if rep.Swarm.NodeID != "" {
				m.NodeID = rep.Swarm.NodeID
			}
			if rep.Swarm.Role != "" {
				m.Role = rep.Swarm.Role
			}
			m.Active = rep.Swarm.State == "active"
		}
		if prev, dup := out[n.VM]; dup && !prev.Revoked && m.Revoked {
			continue // a VM enrolled again: its live node counts
		}
		out[n.VM] = m
	}
	return out, nil
}

// DestroyOrder sorts vms for a destroy that goes through the swarm:
// workers first, managers last, and among the managers the one the node
// operations go through (via, a VM name; "" none known) at the very end.
func DestroyOrder(vms []vsphere.VM, members map[string]Member, via string) {
	rank := func(vm vsphere.VM) int {
		switch {
		case vm.Name == via:
			return 2
		case roleOf(vm, members) == api.RoleManager:
			return 1
		}
		return 0
	}
	sort.SliceStable(vms, func(i, j int) bool { return rank(vms[i]) < rank(vms[j]) })
}

func roleOf(vm vsphere.VM, members map[string]Member) string {
	if m, ok := members[vm.Name]; ok && m.Role != "" {
		return m.Role
	}
	return vm.Role
}

// LastManagers says whether destroying vms takes away every manager of
// the swarm while workers of it stay: it returns the managers and the
// workers left (both empty when not). Only members live in the swarm
// count: enrolled, not revoked, with a swarm node ID.
func LastManagers(vms []vsphere.VM, members map[string]Member) (managers, workersLeft []string) {
	going := map[string]bool{}
	for _, vm := range vms {
		going[vm.Name] = true
	}
	var left int
	for _, m := range members {
		if m.Revoked || m.NodeID == "" {
			continue
		}
		switch {
		case m.Role == api.RoleManager && going[m.VM]:
			managers = append(managers, m.VM)
		case m.Role == api.RoleManager:
			left++
		case !going[m.VM]:
			workersLeft = append(workersLeft, m.VM)
		}
	}
	if left > 0 || len(managers) == 0 || len(workersLeft) == 0 {
		return nil, nil
	}
	sort.Strings(managers)
	sort.Strings(workersLeft)
	return managers, workersLeft
}

// QuorumLoss says whether destroying vms takes away some but not all of
// the swarm's live managers and leaves too few for the raft quorum (a
// majority of the managers it has now: the destroyed ones stay raft
// members until demoted, which destroy cannot do): it returns the
// managers going and how many the swarm has (nil, 0 when not).
func QuorumLoss(vms []vsphere.VM, members map[string]Member) (going []string, managers int) {
	in := map[string]bool{}
	for _, vm := range vms {
		in[vm.Name] = true
	}
	for _, m := range members {
		if m.Revoked || m.NodeID == "" || m.Role != api.RoleManager {
			continue
		}
		managers++
		if in[m.VM] {
			going = append(going, m.VM)
		}
	}
	if len(going) == 0 || len(going) == managers || 2*(managers-len(going)) > managers {
		return nil, 0
	}
	sort.Strings(going)
	return going, managers
}

// QuorumLossError is the refusal of a destroy that would lose the raft
// quorum (QuorumLoss), saying what to do.
func QuorumLossError(going []string, managers int) error {
	return fmt.Errorf("destroy: %s would leave %d of the swarm's %d managers, less than a majority: the swarm would lose its raft quorum and take no more changes; demote them first on a manager (docker node demote ID), destroy fewer managers at a time, or pass --force",
		strings.Join(going, " "), managers-len(going), managers)
}

// CheckManagers refuses, unless force, a destroy of vms that leaves
// workers without managers or the swarm without quorum.
func CheckManagers(vms []vsphere.VM, members map[string]Member, force bool) error {
	if force {
		return nil
	}
	if mgrs, workers := LastManagers(vms, members); len(mgrs) > 0 {
		return LastManagersError(mgrs, workers)
	}
	if going, n := QuorumLoss(vms, members); len(going) > 0 {
		return QuorumLossError(going, n)
	}
	return nil
}

// LastManagersError is the refusal of a destroy that would leave workers
// without a manager (LastManagers), saying what to do.
func LastManagersError(managers, workers []string) error {
	return fmt.Errorf("destroy: %s would take away the last manager(s) of the swarm while its worker(s) %s stay (they could not be drained or removed any more): destroy those workers too, or pass --force to leave them in a swarm without managers",
		strings.Join(managers, " "), strings.Join(workers, " "))
}

// SwarmPlan says in one line what destroying vm does to its swarm node
// when the appliance runs (online) or not.
func SwarmPlan(vm vsphere.VM, members map[string]Member, online, last bool) string {
	m, ok := members[vm.Name]
	switch {
	case !ok:
		return "never enrolled: no swarm node, no certificate"
	case m.Revoked:
		return "node " + m.Node + " was revoked before: its swarm node is left as it is"
	case m.NodeID == "":
		return "node " + m.Node + " never reported a swarm node: its certificate is revoked"
	case !online:
		return fmt.Sprintf("swarm node %s stays (the appliance is not running, no manager is asked): run docker node rm --force %s on a manager; its certificate is revoked", m.NodeID, m.NodeID)
	case last:
		return fmt.Sprintf("swarm node %s (the swarm's last manager) goes with the swarm; its certificate is revoked", m.NodeID)
	case m.Role == api.RoleManager:
		return fmt.Sprintf("swarm node %s (a manager) is drained, then removed through another manager (Docker refuses while it is a raft member: then run docker node demote %s and docker node rm --force %s on a manager); its certificate is revoked", m.NodeID, m.NodeID, m.NodeID)
	}
	return fmt.Sprintf("swarm node %s is drained, then removed (docker node rm --force) through a manager; its certificate is revoked", m.NodeID)
}
