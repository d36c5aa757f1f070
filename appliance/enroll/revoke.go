package enroll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// Revoke revokes the node named name: its certificate stops working at
// once and it cannot enroll again with its spent token. Then it takes the
// node out of the swarm (docker node rm --force, by the swarm node ID its
// reports gave) through a manager, waiting up to RevokeWait; a removal
// not done by then goes on in the background for up to OpTake. The
// revoke stands whatever becomes of the swarm node: that is logged and on
// the node's timeline, with the command to remove it by hand when no
// manager could. RevokeNode is the same with the caller's context and the
// outcome returned.
func (s *Server) Revoke(name string) error {
	if err := s.RevokeCert(name); err != nil {
		return err
	}
	done := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.RevokeWait+s.OpTake)
		defer cancel()
		done <- s.removeRevoked(ctx, name)
	}()
	select {
	case note := <-done:
		s.Log.Info("node revoked", "node", name, "swarm", note)
	case <-time.After(s.RevokeWait):
		s.Log.Info("node revoked; its swarm node is not removed yet: waiting for a manager in the background", "node", name)
		go func() { s.Log.Info("revoked node's swarm node", "node", name, "swarm", <-done) }()
	}
	return nil
}

// RevokeNode revokes like Revoke, waits until ctx ends for the swarm
// removal, and returns what became of the swarm node in one line for
// people: removed, not in the swarm, or why it stays and how to remove it
// by hand. err is only about the revoke itself.
func (s *Server) RevokeNode(ctx context.Context, name string) (swarmNote string, err error) {
	if err := s.RevokeCert(name); err != nil {
		return "", err
	}
	return s.removeRevoked(ctx, name), nil
}

// removeRevoked removes the revoked node's swarm node and says how it
// went; a swarm node that stays is also on the node's timeline.
func (s *Server) removeRevoked(ctx context.Context, name string) string {
	id := ""
	if rep, _, ok := s.LastReport(name); ok && rep.Swarm.State == "active" {
		id = rep.Swarm.NodeID
	}
	if id == "" {
		s.Store.View(func(tx *store.Tx) error {
			if n, err := tx.Node(name); err == nil {
				id = n.SwarmNodeID
			}
			return nil
		})
	}
	if id == "" {
		return "it never reported a swarm node ID: nothing to remove from the swarm"
	}
	err := s.Remove(ctx, id, true)
	switch {
	case err == nil:
		return fmt.Sprintf("swarm node %s removed", id)
	case errors.Is(err, swarm.ErrNoNode):
		return fmt.Sprintf("swarm node %s was not in the swarm any more", id)
	}
	note := fmt.Sprintf("swarm node %s stays in the swarm (%v); remove it on a manager: docker node rm --force %s", id, err, id)
	s.Store.Update(func(tx *store.Tx) error {
		n, e := tx.Node(name)
		if e != nil {
			return e
		}
		return tx.AppendEvent(store.Event{Time: s.Now(), MAC: n.MAC(), VM: n.VM, Kind: string(timeline.Revoke), Detail: note})
	})
	s.Log.Warn("revoked node stays in the swarm", "node", name, "swarm_node", id, "err", err, "fix", "docker node rm --force "+id)
	return note
}
