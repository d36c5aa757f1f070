package api

import "testing"

func TestTaskOnNode(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"assigned", "accepted", "preparing", "ready", "starting", "running"} {
		if !TaskOnNode(s) {
			t.Errorf("task %s: not counted, want on the node", s)
		}
	}
	for _, s := range []string{"new", "pending", "allocated", "complete", "shutdown", "failed", "rejected", "remove", "orphaned", "", "Running", "later"} {
		if TaskOnNode(s) {
			t.Errorf("task %q: counted, want gone (or not yet there)", s)
		}
	}
}
