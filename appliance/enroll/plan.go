package enroll

import (
	"context"
	"errors"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// swarmInfo is a manager's push as the swarm package holds it; from
// names the node whose agent pushed it.
func swarmInfo(p *api.ManagerPush, from string, now time.Time) swarm.Info {
	return swarm.Info{ClusterID: p.ClusterID, Worker: p.Worker, Manager: p.Manager,
		Managers: append([]string(nil), p.Managers...), NodeIDs: append([]string(nil), p.NodeIDs...),
		Nodes: append([]api.SwarmNode(nil), p.Nodes...), From: from + " (its agent, from its Docker API)", At: now}
}

func wait(reason string) api.Plan {
	return api.Plan{Action: api.ActionNone, Reason: reason, RetryAfter: 5}
}

// plan decides what node n does next, from its last report and the swarm.
func (s *Server) plan(ctx context.Context, n *store.Node) (api.Plan, error) {
	rep, seen := s.lastReport(n)
	if rep == nil {
		return wait("report first"), nil
	}
	st := rep.Swarm
	managed := s.Swarm == nil
	if managed && n.Role == api.RoleManager {
		var initNode string
		var site store.SwarmSite
		err := s.Store.Update(func(tx *store.Tx) error {
			var err error
			initNode, err = tx.ClaimSwarmInit(n.Name, s.Now())
			if err != nil || initNode != n.Name {
				return err
			}
			site, err = tx.SwarmSite()
			if err != nil {
				return err
			}
			if site.ClusterID == "" && st.State == "active" && st.ControlAvailable {
				site.ClusterID = st.ClusterID
				if err := tx.PutSwarmSite(site); err != nil {
					return err
				}
				return tx.AppendEvent(store.Event{Time: s.Now(), MAC: n.MAC(), VM: n.VM, Kind: string(timeline.SwarmInit), Detail: "swarm " + st.ClusterID + " founded by " + n.Name})
			}
			return nil
		})
		if err != nil {
			return api.Plan{}, err
		}
		if initNode == n.Name {
			if st.State == "active" && st.ControlAvailable {
				return api.Plan{Action: api.ActionNone, Role: api.RoleManager, ClusterID: st.ClusterID, Reason: "this node founded the swarm"}, nil
			}
			if (st.State == "inactive" || st.State == "") && site.ClusterID == "" {
				return api.Plan{Action: api.ActionInit, Role: api.RoleManager, Reason: "this node is the site's first manager"}, nil
			}
			if st.State != "inactive" && st.State != "" {
				// pending/error/locked: the operator looks.
				return wait("swarm state " + st.State), nil
			}
			// The founder lost its swarm (disk replaced): never found a
			// second one; rejoin the first through the other managers.
			if _, err := s.swarmSource().Swarm(ctx); errors.Is(err, swarm.ErrNoSwarm) {
				return wait("this node founded swarm " + site.ClusterID + " and lost it, and no other manager reports it"), nil
			}
		}
	}
	info, err := s.swarmSource().Swarm(ctx)
	if errors.Is(err, swarm.ErrNoSwarm) {
		return wait("waiting for the swarm's first manager"), nil
	}
	if err != nil {
		s.Log.Warn("swarm unknown", "err", err)
		return wait("swarm manager unreachable from the appliance"), nil
	}
	join := api.Plan{Action: api.ActionJoin, Role: n.Role, Managers: info.Managers, JoinToken: info.Token(n.Role), ClusterID: info.ClusterID}
	switch st.State {
	case "active":
		if info.ClusterID != "" && st.ClusterID != "" && st.ClusterID != info.ClusterID {
			join.Action, join.Reason = api.ActionLeaveRejoin, "node is in another swarm ("+st.ClusterID+")"
			return join, nil
		}
		if member, known := info.Member(st.NodeID); known && !member && st.NodeID != "" && info.At.After(seen.Add(s.MemberGrace)) {
			join.Action, join.Reason = api.ActionLeaveRejoin, "the swarm no longer lists node "+st.NodeID
			return join, nil
		}
		return api.Plan{Action: api.ActionNone, Role: n.Role, ClusterID: info.ClusterID, Reason: "in the swarm"}, nil
	case "pending":
		return wait("join in progress"), nil
	case "error":
		join.Action, join.Reason = api.ActionLeaveRejoin, "swarm error on the node"
		return join, nil
	case "locked":
		return wait("swarm locked on the node: unlock it (docker swarm unlock)"), nil
	}
	if len(info.Managers) == 0 || join.JoinToken == "" {
		return wait("no manager address or join token known yet"), nil
	}
	join.Reason = "join the site's swarm"
	return join, nil
}
