package api

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSwarmNodeValidate(t *testing.T) {
	t.Parallel()
	good := SwarmNode{ID: "k3q5x9y2a1b0c7d6e5f4g3h2i", Hostname: "lab-m1", Role: RoleManager, State: NodeReady,
		Availability: AvailabilityActive, Addr: "10.77.0.11", Leader: true, EngineVersion: "20.10.24+dfsg1", Tasks: 3, TasksKnown: true}
	if err := good.Validate(); err != nil {
		t.Fatalf("good node refused: %v", err)
	}
	for name, c := range map[string]struct {
		edit func(*SwarmNode)
		want string
	}{
		"no id":           {func(n *SwarmNode) { n.ID = "" }, "id missing"},
		"id with space":   {func(n *SwarmNode) { n.ID = "a b" }, "only letters"},
		"id too long":     {func(n *SwarmNode) { n.ID = strings.Repeat("a", 129) }, "longer than 128"},
		"role":            {func(n *SwarmNode) { n.Role = "boss" }, `role "boss"`},
		"no role":         {func(n *SwarmNode) { n.Role = "" }, `role ""`},
		"state":           {func(n *SwarmNode) { n.State = "Ready" }, `state "Ready"`},
		"availability":    {func(n *SwarmNode) { n.Availability = "gone" }, `availability "gone"`},
		"hostname ctl":    {func(n *SwarmNode) { n.Hostname = "lab\x1b[2Jm1" }, "hostname contains a control character"},
		"addr long":       {func(n *SwarmNode) { n.Addr = strings.Repeat("1", maxShort+1) }, "addr longer"},
		"engine version":  {func(n *SwarmNode) { n.EngineVersion = "20\n10" }, "engine_version contains"},
		"tasks negative":  {func(n *SwarmNode) { n.Tasks = -1 }, "tasks -1 is not between 0 and 1000000"},
		"tasks too many":  {func(n *SwarmNode) { n.Tasks = MaxNodeTasks + 1 }, "tasks 1000001 is not between"},
		"tasks not known": {func(n *SwarmNode) { n.Tasks, n.TasksKnown = 2, false }, "tasks 2 without tasks_known"},
	} {
		n := good
		c.edit(&n)
		if err := n.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}

// A pushed node list travels inside a report: a bad node refuses the
// report with ErrDecode naming the node's index; a good one round-trips.
func TestReportNodes(t *testing.T) {
	t.Parallel()
	nodes := []SwarmNode{
		{ID: "n1", Hostname: "lab-m1", Role: RoleManager, State: NodeReady, Availability: AvailabilityActive, Addr: "10.77.0.11", Leader: true, EngineVersion: "20.10.24"},
		{ID: "n2", Hostname: "lab-w1", Role: RoleWorker, State: NodeDown, TasksKnown: true},
		{ID: "n3", Hostname: "lab-w2", Role: RoleWorker, State: NodeReady, Availability: AvailabilityDrain, Tasks: 2, TasksKnown: true},
	}
	in := Report{Swarm: SwarmState{State: "active", NodeID: "n1"},
		JoinTokens: &ManagerPush{ClusterID: "c", Worker: "w", Manager: "m", Managers: []string{"10.77.0.11:2377"}, NodeIDs: []string{"n1", "n2"}, Nodes: nodes}}
	var buf bytes.Buffer
	if err := Encode(&buf, in); err != nil {
		t.Fatal(err)
	}
	var out Report
	if err := Decode(&buf, &out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.JoinTokens.Nodes, nodes) {
		t.Fatalf("nodes after the round trip: %+v", out.JoinTokens.Nodes)
	}

	bad := in
	push := *in.JoinTokens
	push.Nodes = append([]SwarmNode{nodes[0]}, SwarmNode{ID: "n2", Role: RoleWorker, State: "sleeping"})
	bad.JoinTokens = &push
	buf.Reset()
	Encode(&buf, bad)
	err := Decode(&buf, &out)
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "nodes[1]") || !strings.Contains(err.Error(), "sleeping") {
		t.Fatalf("bad node state: %v; want ErrDecode naming nodes[1] and the state", err)
	}

	// The count is checked before any node (no body this size reaches
	// Validate through Decode: MaxBody stops it first).
	push.Nodes = make([]SwarmNode, MaxSwarmNodes+1)
	if err := (&Report{JoinTokens: &push}).Validate(); err == nil || !strings.Contains(err.Error(), "more than 10000 nodes") {
		t.Fatalf("%d nodes: %v; want refused", len(push.Nodes), err)
	}
}
