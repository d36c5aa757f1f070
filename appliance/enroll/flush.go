package enroll

import (
	"context"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
)

// Heartbeats are answered from memory and committed in groups: every
// FlushEvery one transaction (one fsync) writes each node's latest report
// and its timeline events. A crash loses at most that much of heartbeats,
// which the next heartbeat repeats; the agent never waits for the disk.
//
// Each node's state has its own lock (one agent per node: no contention);
// there is no lock every request takes.

// nodeState is a node's latest heartbeat as the appliance holds it.
type nodeState struct {
	mu     sync.Mutex
	has    bool
	raw    []byte
	nodeID string
	seen   time.Time // when nodeID was first reported
	at     time.Time
	dirty  bool // not yet in the store
	events []store.Event
	// the last "report" timeline event: summary and time
	evSummary string
	evAt      time.Time
}

func (s *Server) nodeState(name string) *nodeState {
	if v, ok := s.nodes.Load(name); ok {
		return v.(*nodeState)
	}
	v, _ := s.nodes.LoadOrStore(name, &nodeState{})
	return v.(*nodeState)
}

// reportEvent says whether a report with this summary gets a timeline
// event now (it changed, or the last one is older than ReportEvent).
func (s *Server) reportEvent(name, summary string, now time.Time) bool {
	st := s.nodeState(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.evSummary == summary && now.Sub(st.evAt) < s.ReportEvent {
		return false
	}
	st.evSummary, st.evAt = summary, now
	return true
}

// queueReport records a node's heartbeat in memory.
func (s *Server) queueReport(name string, raw []byte, nodeID string, at time.Time, events []store.Event) {
	st := s.nodeState(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.has || st.nodeID != nodeID {
		st.seen = at
	}
	st.has, st.raw, st.nodeID, st.at, st.dirty = true, raw, nodeID, at, true
	st.events = append(st.events, events...)
}

// latestFor returns the node's latest heartbeat held in memory.
func (s *Server) latestFor(name string) (raw []byte, nodeID string, seen time.Time, ok bool) {
	v, found := s.nodes.Load(name)
	if !found {
		return nil, "", time.Time{}, false
	}
	st := v.(*nodeState)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.raw, st.nodeID, st.seen, st.has
}

// flush commits every heartbeat not yet stored in one transaction.
func (s *Server) flush() error {
	type item struct {
		name   string
		raw    []byte
		nodeID string
		seen   time.Time
		at     time.Time
		events []store.Event
	}
	var batch []item
	s.nodes.Range(func(k, v any) bool {
		st := v.(*nodeState)
		st.mu.Lock()
		if st.dirty {
			batch = append(batch, item{k.(string), st.raw, st.nodeID, st.seen, st.at, st.events})
			st.dirty, st.events = false, nil
		}
		st.mu.Unlock()
		return true
	})
	if len(batch) == 0 {
		return nil
	}
	err := s.Store.Update(func(tx *store.Tx) error {
		for _, it := range batch {
			n, err := tx.Node(it.name)
			if err != nil {
				continue // gone meanwhile
			}
			n.LastSeen, n.LastReport = it.at, it.raw
			if it.nodeID != n.SwarmNodeID {
				n.SwarmNodeID, n.SwarmNodeSeen = it.nodeID, it.seen
			}
			if err := tx.PutNode(*n); err != nil {
				return err
			}
			for _, e := range it.events {
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
		for _, it := range batch {
			st := s.nodeState(it.name)
			st.mu.Lock()
			st.dirty = true
			st.events = append(it.events, st.events...)
			st.mu.Unlock()
		}
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
