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

// pendingReport is a node's latest heartbeat not yet in the store.
type pendingReport struct {
	raw    []byte
	nodeID string
	at     time.Time
	events []store.Event
}

func (s *Server) queueReport(name string, p pendingReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.pending[name]; ok {
		p.events = append(old.events, p.events...)
		if old.nodeID == p.nodeID {
			p.at = old.at // SwarmNodeSeen is the first sighting
		}
	}
	s.pending[name] = &p
}

// pendingFor returns the node's not yet committed report, if any.
func (s *Server) pendingFor(name string) (pendingReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pending[name]; ok {
		return *p, true
	}
	return pendingReport{}, false
}

// flush commits every pending report in one transaction.
func (s *Server) flush() error {
	s.mu.Lock()
	batch := s.pending
	s.pending = make(map[string]*pendingReport, len(batch))
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.Store.Update(func(tx *store.Tx) error {
		for name, p := range batch {
			n, err := tx.Node(name)
			if err != nil {
				continue // revoked and deleted meanwhile
			}
			n.LastSeen, n.LastReport = p.at, p.raw
			if p.nodeID != n.SwarmNodeID {
				n.SwarmNodeID, n.SwarmNodeSeen = p.nodeID, p.at
			}
			if err := tx.PutNode(*n); err != nil {
				return err
			}
			for _, e := range p.events {
				if err := tx.AppendEvent(e); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		// Put them back unless newer ones arrived; the next flush retries.
		s.mu.Lock()
		for name, p := range batch {
			if _, newer := s.pending[name]; !newer {
				s.pending[name] = p
			}
		}
		s.mu.Unlock()
	}
	return err
}

// flushLoop commits pending reports every FlushEvery until ctx ends, then
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
