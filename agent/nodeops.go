package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// errNoNode marks a node the local manager does not know.
type errNoNode struct{ error }

// NodeOp carries out one node operation with the local manager's Docker
// API: drain and activate update the node's spec (read with inspect, sent
// back at the version read, so a concurrent change is refused rather than
// overwritten), remove and remove-force are docker node rm [--force]. A
// node already at the wanted availability is left alone. The appliance
// may hand the same operation again when an answer was lost: drain and
// activate repeat harmlessly, a repeated remove reports the node unknown.
func (d *Docker) NodeOp(ctx context.Context, op api.NodeOp) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var err error
	switch op.Do {
	case api.OpRemove, api.OpRemoveForce:
		_, err = d.c.NodeRemove(ctx, op.Node, client.NodeRemoveOptions{Force: op.Do == api.OpRemoveForce})
	case api.OpDrain, api.OpActivate:
		want := swarm.NodeAvailabilityDrain
		if op.Do == api.OpActivate {
			want = swarm.NodeAvailabilityActive
		}
		var res client.NodeInspectResult
		res, err = d.c.NodeInspect(ctx, op.Node, client.NodeInspectOptions{})
		if err == nil && res.Node.Spec.Availability != want {
			spec := res.Node.Spec
			spec.Availability = want
			_, err = d.c.NodeUpdate(ctx, op.Node, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec})
		}
	default:
		return fmt.Errorf("node operation %q unknown to this agent: update the image", op.Do)
	}
	if err != nil && cerrdefs.IsNotFound(err) {
		return errNoNode{fmt.Errorf("node %s not found in this swarm: %w", op.Node, err)}
	}
	return err
}

// doOps carries out the appliance's node operations one after the other
// and returns their results. An operation this agent cannot read is
// answered with the reason when its ID is usable, else only logged.
func (a *Agent) doOps(ctx context.Context, ops []api.NodeOp) []api.NodeOpResult {
	var rs []api.NodeOpResult
	for _, op := range ops {
		if len(rs) == api.MaxNodeOps {
			break // the rest is handed again
		}
		r := api.NodeOpResult{ID: op.ID}
		if err := op.Validate(); err != nil {
			if (&api.NodeOpResult{ID: op.ID}).Validate() != nil {
				a.cfg.Log.Warn("node operation without a usable ID: ignored", "err", err)
				continue
			}
			r.Error = opText("refused by the agent: " + err.Error())
			rs = append(rs, r)
			continue
		}
		err := a.docker.NodeOp(ctx, op)
		if err != nil {
			_, r.NotFound = err.(errNoNode)
			r.Error = opText(err.Error())
			a.cfg.Log.Warn("swarm node operation failed", "op", op.Do, "node", op.Node, "err", err)
		} else {
			a.cfg.Log.Info("swarm node operation done", "op", op.Do, "node", op.Node)
		}
		rs = append(rs, r)
	}
	return rs
}

// opText makes an error text fit a NodeOpResult: control characters
// become spaces, at most 1024 bytes.
func opText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1024], "")
	}
	return s
}
