package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	swarmtypes "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// Operator changes swarm nodes through a manager: the agent of a
// swarmboot-made manager (the op rides on the answer to its heartbeat, it
// reports the result), or an existing swarm's manager over its TLS Docker
// API (Remote). Each call returns once the manager has done it, refused
// (the error says why), or ctx ended.
type Operator interface {
	SetAvailability(ctx context.Context, nodeID, availability string) error // api.AvailabilityDrain | api.AvailabilityActive
	Remove(ctx context.Context, nodeID string, force bool) error
}

// ErrNoNode is wrapped when the manager does not know the node (removed
// already, or a wrong ID). A caller removing a node may take it as done.
var ErrNoNode = errors.New("swarm: no such node")

// OpFor is the api.NodeOp verb that SetAvailability(availability) or
// Remove(force) asks for; an availability other than drain or active is
// an error.
func OpFor(availability string, remove, force bool) (string, error) {
	switch {
	case remove && force:
		return api.OpRemoveForce, nil
	case remove:
		return api.OpRemove, nil
	case availability == api.AvailabilityDrain:
		return api.OpDrain, nil
	case availability == api.AvailabilityActive:
		return api.OpActivate, nil
	}
	return "", fmt.Errorf("availability %q: want %q or %q", availability, api.AvailabilityDrain, api.AvailabilityActive)
}

// nodeOp carries out one node operation with a manager's Docker API c:
// availability through inspect + update of the node's spec at the version
// read (a concurrent change makes Docker refuse it rather than be
// overwritten), remove through docker node rm. A node the manager does not
// know gives an error wrapping ErrNoNode. (The agent of a swarmboot-made
// manager does the same with its local Docker API, agent/nodeops.go.)
func nodeOp(ctx context.Context, c *client.Client, op api.NodeOp) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var err error
	switch op.Do {
	case api.OpRemove, api.OpRemoveForce:
		_, err = c.NodeRemove(ctx, op.Node, client.NodeRemoveOptions{Force: op.Do == api.OpRemoveForce})
	case api.OpDrain, api.OpActivate:
		want := swarmtypes.NodeAvailabilityDrain
		if op.Do == api.OpActivate {
			want = swarmtypes.NodeAvailabilityActive
		}
		var res client.NodeInspectResult
		res, err = c.NodeInspect(ctx, op.Node, client.NodeInspectOptions{})
		if err == nil && res.Node.Spec.Availability != want {
			spec := res.Node.Spec
			spec.Availability = want
			_, err = c.NodeUpdate(ctx, op.Node, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec})
		}
	default:
		return fmt.Errorf("node operation %q unknown: update swarmboot", op.Do)
	}
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %s: %v", ErrNoNode, op.Node, err)
		}
		return fmt.Errorf("%s node %s: %w", op.Do, op.Node, err)
	}
	return nil
}

// SetAvailability drains (api.AvailabilityDrain) or activates
// (api.AvailabilityActive) the node through the existing swarm's manager.
func (r *Remote) SetAvailability(ctx context.Context, nodeID, availability string) error {
	do, err := OpFor(availability, false, false)
	if err != nil {
		return err
	}
	return r.do(ctx, api.NodeOp{Node: nodeID, Do: do})
}

// Remove removes the node from the existing swarm (force: even when it is
// not down, like docker node rm --force).
func (r *Remote) Remove(ctx context.Context, nodeID string, force bool) error {
	do, _ := OpFor("", true, force)
	return r.do(ctx, api.NodeOp{Node: nodeID, Do: do})
}

func (r *Remote) do(ctx context.Context, op api.NodeOp) error {
	if err := api.ValidateNodeID(op.Node); err != nil {
		return fmt.Errorf("swarm node: %w", err)
	}
	if err := nodeOp(ctx, r.Client, op); err != nil {
		return fmt.Errorf("swarm manager %s: %w", r.Client.DaemonHost(), err)
	}
	// The next Swarm call should show the change, not a cached list.
	r.mu.Lock()
	r.cached.At = time.Time{}
	r.mu.Unlock()
	return nil
}
