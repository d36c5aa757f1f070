package api

// TaskOnNode is the rule both counters of SwarmNode.Tasks use (a
// manager's agent and the appliance reading an existing swarm's manager):
// whether a swarm task in this state (Docker's task status state, as the
// task list shows it) is still on the node it is assigned to. A drain
// sets its tasks' desired state to shutdown at once, but each keeps its
// running state until its container has stopped (after its service's
// stop_grace_period): those count until then. Tasks not yet assigned
// (new, pending, allocated) have no node; complete, shutdown, failed,
// rejected, remove and orphaned ones are gone, as is any state Docker
// adds later.
func TaskOnNode(state string) bool {
	switch state {
	case "assigned", "accepted", "preparing", "ready", "starting", "running":
		return true
	}
	return false
}
