package rotate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// world is a fake site for the roller: a store with VMs and nodes, an
// artifacts directory with the builds "old" and "new", and a swarm whose
// nodes reboot into whatever image the store names when reset, as the
// netboot booter would serve it.
type world struct {
	t   *testing.T
	st  *store.Store
	dir string

	mu    sync.Mutex
	nodes map[string]*fakeNode
	calls []string // "drain w1", "image w1 new", "reset w1", "activate w1"
	down  int      // nodes down now
	maxDn int      // most nodes down at once
	// back decides what a reset node comes back as (nil: the version the
	// store's image has, its own ID); ok=false: it never comes back.
	back func(n *fakeNode, version string) (v, id string, ok bool)
	// bootDelay is how long a reset node is away.
	bootDelay time.Duration
	// isos maps the datastore ISOs InsertISO made to their builds.
	isos map[string]string
}

type fakeNode struct {
	name, node, role, id, version string
	state, avail                  string // manager's list: ready/down, active/drain
	leader                        bool
	reportAt                      time.Time
	// drainTasks are the task counts the manager's list shows for the
	// node once it is drained, one per look, the last one kept; tasks is
	// the count shown last. tasksUnknown: the manager's agent does not
	// count tasks.
	drainTasks   []int
	tasks        int
	tasksUnknown bool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.DefaultPath(filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	art := filepath.Join(dir, "out")
	os.MkdirAll(art, 0o755)
	for name, v := range map[string]string{"old": "old@111111111111", "new": "new@222222222222"} {
		for _, f := range []string{name + "-kernel", name + "-initrd.img"} {
			os.WriteFile(filepath.Join(art, f), []byte("x"), 0o644)
		}
		os.WriteFile(filepath.Join(art, name+".version"), []byte(v+"\n"), 0o644)
	}
	return &world{t: t, st: st, dir: art, nodes: map[string]*fakeNode{}, bootDelay: 20 * time.Millisecond,
		isos: map[string]string{"[LocalDS_0] swarmboot/old-111.iso": "old"}}
}

// add puts a VM of group (booting image, running version) into the store,
// enrolled and active in the swarm.
func (w *world) add(name, group, role, image, version string) *fakeNode {
	w.t.Helper()
	mac := fmt.Sprintf("52:54:00:00:00:%02x", len(w.nodes)+1)
	node := name
	if group == "workers" && strings.HasSuffix(name, "3") {
		node = "mac-" + strings.ReplaceAll(mac, ":", "") // enrolled with a kernel-line token for its MAC
	}
	err := w.st.Update(func(tx *store.Tx) error {
		if err := tx.PutVM(store.VM{Name: name, Group: group, Role: role, Image: image, MAC: mac}); err != nil {
			return err
		}
		return tx.PutNode(store.Node{Name: node, MACs: []string{mac}, Role: role})
	})
	if err != nil {
		w.t.Fatal(err)
	}
	n := &fakeNode{name: name, node: node, role: role, id: "id-" + name, version: version, state: api.NodeReady,
		avail: api.AvailabilityActive, reportAt: time.Now()}
	w.mu.Lock()
	w.nodes[name] = n
	w.mu.Unlock()
	return n
}

func (w *world) roller() *Roller {
	return &Roller{Store: w.st, Swarm: w, Nodes: w, Machines: w, Artifacts: w.dir, Poll: 5 * time.Millisecond, Grace: 30 * time.Millisecond}
}

func (w *world) byID(id string) *fakeNode {
	for _, n := range w.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (w *world) SetAvailability(_ context.Context, nodeID, availability string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.byID(nodeID)
	if n == nil {
		return fmt.Errorf("no such node %s", nodeID)
	}
	verb := map[string]string{api.AvailabilityDrain: "drain", api.AvailabilityActive: "activate"}[availability]
	w.calls = append(w.calls, verb+" "+n.name)
	n.avail = availability
	return nil
}

func (w *world) SetImage(_ context.Context, vm, image string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, "image "+vm+" "+image)
	return nil
}

// InsertISO plays the datastore push and CD-ROM change of an iso VM.
func (w *world) InsertISO(_ context.Context, vm, image string) (string, error) {
	if _, err := os.Stat(filepath.Join(w.dir, image+".iso")); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, "iso "+vm+" "+image)
	ds := "[LocalDS_0] swarmboot/" + image + "-222.iso"
	w.isos[ds] = image
	return ds, nil
}

// Reset takes the node down and brings it back after bootDelay running
// the version of the image the store names for its VM now.
func (w *world) Reset(_ context.Context, vm string) error {
	var image string
	err := w.st.View(func(tx *store.Tx) error {
		v, err := tx.VM(vm)
		if err == nil {
			image = v.Image
		}
		return err
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	if b, ok := w.isos[image]; ok {
		image = b // the build whose ISO is in the CD-ROM
	}
	w.mu.Unlock()
	version, err := build.ReadVersion(w.dir, image)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.nodes[vm]
	w.calls = append(w.calls, "reset "+vm)
	if n.tasks > 0 {
		w.calls = append(w.calls, fmt.Sprintf("reset with %d tasks on %s", n.tasks, vm))
	}
	if n.state == api.NodeReady {
		w.down++
		w.maxDn = max(w.maxDn, w.down)
	}
	n.state = api.NodeDown
	v, id, ok := version, n.id, true
	if w.back != nil {
		v, id, ok = w.back(n, version)
	}
	if ok {
		time.AfterFunc(w.bootDelay, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.down--
			n.state, n.version, n.id, n.reportAt = api.NodeReady, v, id, time.Now()
		})
	}
	return nil
}

func (w *world) LastReport(name string) (api.Report, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n *fakeNode
	for _, fn := range w.nodes {
		if fn.node == name {
			n = fn
		}
	}
	if n == nil {
		return api.Report{}, time.Time{}, false
	}
	at := n.reportAt
	if n.state == api.NodeReady {
		at = time.Now() // a node that is up heartbeats
	}
	return api.Report{ImageVersion: n.version, Swarm: api.SwarmState{State: "active", NodeID: n.id, Role: n.role}}, at, true
}

func (w *world) CurrentSwarm(context.Context) (swarm.Info, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	info := swarm.Info{ClusterID: "c1", Worker: "SWMTKN-w", Manager: "SWMTKN-m"}
	for _, n := range w.nodes {
		info.NodeIDs = append(info.NodeIDs, n.id)
		if n.avail == api.AvailabilityDrain && len(n.drainTasks) > 0 {
			n.tasks = n.drainTasks[0]
			if len(n.drainTasks) > 1 {
				n.drainTasks = n.drainTasks[1:]
			}
		}
		info.Nodes = append(info.Nodes, api.SwarmNode{ID: n.id, Hostname: n.name, Role: n.role, State: n.state,
			Availability: n.avail, Leader: n.leader, Tasks: n.tasks, TasksKnown: !n.tasksUnknown})
	}
	return info, nil
}

func (w *world) callLog() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

func (w *world) node(name string) fakeNode {
	w.mu.Lock()
	defer w.mu.Unlock()
	return *w.nodes[name]
}

func (w *world) rotation() *store.Rotation {
	w.t.Helper()
	var rot *store.Rotation
	if err := w.st.View(func(tx *store.Tx) error { var err error; rot, err = tx.Rotation(); return err }); err != nil {
		w.t.Fatal(err)
	}
	return rot
}
