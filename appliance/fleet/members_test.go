package fleet

import (
	"reflect"
	"strings"
	"testing"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/pkg/api"
)

func destroyFixture() ([]vsphere.VM, map[string]Member) {
	vms := []vsphere.VM{{Name: "m1", Role: "manager"}, {Name: "m2", Role: "manager"}, {Name: "w1"}, {Name: "w2"}, {Name: "x1"}}
	members := map[string]Member{
		"m1": {VM: "m1", Node: "m1", NodeID: "id-m1", Role: api.RoleManager, Active: true},
		"m2": {VM: "m2", Node: "m2", NodeID: "id-m2", Role: api.RoleManager, Active: true},
		"w1": {VM: "w1", Node: "w1", NodeID: "id-w1", Role: api.RoleWorker, Active: true},
		"w2": {VM: "w2", Node: "w2", NodeID: "id-w2", Role: api.RoleWorker, Active: true},
	}
	return vms, members
}

func names(vms []vsphere.VM) []string {
	var out []string
	for _, vm := range vms {
		out = append(out, vm.Name)
	}
	return out
}

// TestDestroyOrder: workers (and never-enrolled VMs) first, managers
// after, the manager the operations go through last.
func TestDestroyOrder(t *testing.T) {
	t.Parallel()
	vms, members := destroyFixture()
	DestroyOrder(vms, members, "m1")
	if got, want := names(vms), []string{"w1", "w2", "x1", "m2", "m1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// TestLastManagers: taking every live manager while workers stay is
// flagged with both lists; leaving a manager, taking every worker too, or
// a revoked manager's node not counting is fine.
func TestLastManagers(t *testing.T) {
	t.Parallel()
	vms, members := destroyFixture()
	pick := func(ns ...string) []vsphere.VM {
		var out []vsphere.VM
		for _, vm := range vms {
			for _, n := range ns {
				if vm.Name == n {
					out = append(out, vm)
				}
			}
		}
		return out
	}
	m, w := LastManagers(pick("m1", "m2"), members)
	if !reflect.DeepEqual(m, []string{"m1", "m2"}) || !reflect.DeepEqual(w, []string{"w1", "w2"}) {
		t.Errorf("both managers: %v %v", m, w)
	}
	if m, _ := LastManagers(pick("m1", "w1"), members); m != nil {
		t.Errorf("m2 stays, yet flagged: %v", m)
	}
	if m, _ := LastManagers(pick("m1", "m2", "w1", "w2"), members); m != nil {
		t.Errorf("everything goes, yet flagged: %v", m)
	}
	r := members["m2"]
	r.Revoked = true
	members["m2"] = r
	if m, w := LastManagers(pick("m1", "w2"), members); !reflect.DeepEqual(m, []string{"m1"}) || !reflect.DeepEqual(w, []string{"w1"}) {
		t.Errorf("m2 revoked, m1 goes: %v %v", m, w)
	}
	if err := LastManagersError([]string{"m1"}, []string{"w1"}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("refusal %v does not name --force", err)
	}
}

// TestQuorumLoss: destroying one of two managers, or two of three, loses
// the raft quorum and is refused unless forced; one of three, or all of
// them with no worker left, is not.
func TestQuorumLoss(t *testing.T) {
	t.Parallel()
	vms, members := destroyFixture()
	m1 := []vsphere.VM{vms[0]}
	if err := CheckManagers(m1, members, false); err == nil || !strings.Contains(err.Error(), "quorum") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("one of two managers: %v, want a quorum refusal", err)
	}
	if err := CheckManagers(m1, members, true); err != nil {
		t.Errorf("forced: %v", err)
	}
	members["m3"] = Member{VM: "m3", Node: "m3", NodeID: "id-m3", Role: api.RoleManager, Active: true}
	if err := CheckManagers(m1, members, false); err != nil {
		t.Errorf("one of three managers: %v", err)
	}
	if going, n := QuorumLoss(vms[:2], members); !reflect.DeepEqual(going, []string{"m1", "m2"}) || n != 3 {
		t.Errorf("two of three managers: %v of %d", going, n)
	}
	if err := CheckManagers(append(vms, vsphere.VM{Name: "m3"}), members, false); err != nil {
		t.Errorf("everything goes: %v", err)
	}
}

// TestPlanNotesSwarmOfDeletes: plan's delete of a VM whose node reported
// a swarm node says the swarm node stays and to run destroy first; a
// never-enrolled or revoked one says nothing more.
func TestPlanNotesSwarmOfDeletes(t *testing.T) {
	t.Parallel()
	_, members := destroyFixture()
	r := members["w2"]
	r.Revoked = true
	members["w2"] = r
	p := &Plan{Site: &site.Site{}, Changes: []Change{{Action: Delete, Name: "w1"}, {Action: Delete, Name: "w2"}, {Action: Delete, Name: "x1"}}}
	p.noteSwarm(members)
	var b strings.Builder
	p.Write(&b)
	out := b.String()
	if !strings.Contains(out, "# swarm node id-w1 stays in the swarm (listed down) and node w1 keeps its certificate") || !strings.Contains(out, "run swarmboot destroy w1 first") {
		t.Errorf("plan does not say what becomes of w1's swarm node:\n%s", out)
	}
	if strings.Count(out, "swarm node") != 1 {
		t.Errorf("a note on the revoked w2 or the never-enrolled x1:\n%s", out)
	}
}
