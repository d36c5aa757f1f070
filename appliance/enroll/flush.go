package enroll

import (
	"context"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
)

// Heartbeats are answered from memory and committed in groups: every
// FlushEvery one transaction (one fsync) writes each node's latest report
// and its timeline events. A crash loses at most that much of heartbeats,
// which the next heartbeat repeats; the agent never waits for the disk.

// latestReport is a node's latest heartbeat as the appliance holds it.
type latestReport struct {
	raw    []byte
	nodeID string
	seen   time.Time // when nodeID was first reported
	at     time.Time
	dirty  bool // not yet in the store
	events []store.Event
}

// queueReport records a node's heartbeat in memory.
func (s *Server) queueReport(name string, raw []byte, nodeID string, at time.Time, events []store.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.latest[name]
	if !ok {
		l = &latestReport{}
		s.latest[name] = l
	}
	if !ok || l.nodeID != nodeID {
		l.seen = at
	}
	l.raw, l.nodeID, l.at, l.dirty = raw, nodeID, at, true
	l.events = append(l.events, events...)
}

// latestFor returns the node's latest heartbeat held in memory.
func (s *Server) latestFor(name string) (raw []byte, nodeID string, seen time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, found := s.latest[name]; found {
		return l.raw, l.nodeID, l.seen, true
	}
	return nil, "", time.Time{}, false
}

// flush commits every heartbeat not yet stored in one transaction.
func (s *Server) flush() error {
	type item struct {
		name string
		l    latestReport
	}
	var batch []item
	s.mu.Lock()
	for name, l := range s.latest {
		if l.dirty {
			batch = append(batch, item{name, *l})
			l.dirty, l.events = false, nil
		}
	}
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.Store.Update(func(tx *store.Tx) error {
		for _, it := range batch {
			n, err := tx.Node(it.name)
			if err != nil {
				continue // gone meanwhile
			}
			n.LastSeen, n.LastReport = it.l.at, it.l.raw
			if it.l.nodeID != n.SwarmNodeID {
				n.SwarmNodeID, n.SwarmNodeSeen = it.l.nodeID, it.l.seen
			}
			if err := tx.PutNode(*n); err != nil {
				return err
			}
			for _, e := range it.l.events {
				if err := tx.AppendEvent(e); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// Mark them dirty again (keeping newer reports); the next flush
		// retries.
		s.mu.Lock()
		for _, it := range batch {
			if l, ok := s.latest[it.name]; ok {
				l.dirty = true
				l.events = append(it.l.events, l.events...)
			}
		}
		s.mu.Unlock()
	}
	return err
}

// flushLoop commits heartbeats every FlushEvery until ctx ends, then
// once more.
func (s *Server) flushLoop(ctx context.Context) {
	t := time.NewTicker(s.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.flush(); err != nil {
				s.Log.Error("reports not stored at shutdown", "err", err)
			}
			return
		case <-t.C:
			if err := s.flush(); err != nil {
				s.Log.Error("reports not stored; retrying", "err", err)
			}
		}
	}
}
