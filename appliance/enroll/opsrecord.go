package enroll

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/api"
)

var opDone = map[string]string{api.OpDrain: "drained", api.OpActivate: "activated", api.OpRemove: "removed", api.OpRemoveForce: "removed (forced)"}

// opDone logs a node operation's outcome and records it on the timeline
// of the node it was for ("swarm-op"), or of nobody when no enrolled node
// reported that swarm node ID (the log still has it). by names the
// manager that did it ("" when none took it).
func (s *Server) opDone(op api.NodeOp, by string, err error) {
	name, mac, vm := s.nodeForSwarmID(op.Node)
	who := name
	if who == "" {
		who = s.hostnameOf(op.Node)
	}
	target := op.Node
	if who != "" {
		target = fmt.Sprintf("%s (swarm node %s)", who, op.Node)
	}
	var detail string
	if err != nil {
		detail = fmt.Sprintf("%s of %s failed: %v", op.Do, target, err)
		s.Log.Warn("swarm node operation failed", "op", op.Do, "swarm_node", op.Node, "node", who, "through", by, "err", err)
	} else {
		detail = fmt.Sprintf("%s %s through %s", opDone[op.Do], target, by)
		s.Log.Info("swarm node "+opDone[op.Do], "swarm_node", op.Node, "node", who, "through", by)
	}
	if mac == "" && vm == "" {
		return
	}
	if e := s.Store.Update(func(tx *store.Tx) error {
		return tx.AppendEvent(store.Event{Time: s.Now(), MAC: mac, VM: vm, Kind: string(timeline.SwarmOp), Detail: detail})
	}); e != nil {
		s.Log.Error("swarm-op event not stored", "node", name, "err", e)
	}
}

// nodeForSwarmID finds the enrolled node whose reports gave swarm node ID
// id: what this appliance heard since it started, else the store.
func (s *Server) nodeForSwarmID(id string) (name, mac, vm string) {
	s.nodes.Range(func(k, v any) bool {
		st := v.(*nodeState)
		st.mu.Lock()
		if st.has && st.nodeID == id {
			name = k.(string)
		}
		st.mu.Unlock()
		return name == ""
	})
	s.Store.View(func(tx *store.Tx) error {
		if name != "" {
			if n, err := tx.Node(name); err == nil {
				mac, vm = n.MAC(), n.VM
			}
			return nil
		}
		ns, err := tx.Nodes()
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.SwarmNodeID == id {
				name, mac, vm = n.Name, n.MAC(), n.VM
			}
		}
		return nil
	})
	return name, mac, vm
}

// hostnameOf is the swarm node's hostname as the last push listed it.
func (s *Server) hostnameOf(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := s.CurrentSwarm(ctx)
	if err != nil {
		return ""
	}
	for _, n := range info.Nodes {
		if n.ID == id {
			return n.Hostname
		}
	}
	return ""
}

// LastReport is the newest heartbeat of a node (by store node name), from
// memory when it is newer than the store; ok=false when it never reported.
func (s *Server) LastReport(name string) (rep api.Report, at time.Time, ok bool) {
	var raw []byte
	if v, found := s.nodes.Load(name); found {
		st := v.(*nodeState)
		st.mu.Lock()
		if st.has {
			raw, at = st.raw, st.at
		}
		st.mu.Unlock()
	}
	if raw == nil && s.Store != nil {
		s.Store.View(func(tx *store.Tx) error {
			if n, err := tx.Node(name); err == nil && len(n.LastReport) > 0 {
				raw, at = n.LastReport, n.LastSeen
			}
			return nil
		})
	}
	if raw == nil || json.Unmarshal(raw, &rep) != nil {
		return api.Report{}, time.Time{}, false
	}
	return rep, at, true
}
