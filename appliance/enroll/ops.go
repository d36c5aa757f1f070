package enroll

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Node operations (drain, activate, remove) go through a manager. For a
// swarmboot-made swarm the appliance cannot reach a manager's Docker API:
// it queues the operation, hands it out in the answer to the next report
// of a node it made manager that is an active manager (what acceptPush
// takes tokens from), and the call returns when that agent reports the
// result in a later report. For an existing swarm (Server.Swarm is a
// swarm.Operator, e.g. swarm.Remote) the call goes to its Docker API
// directly. Both give their results to the timeline ("swarm-op").

// maxQueuedOps bounds the operations waiting at once.
const maxQueuedOps = 1000

// maxHandOuts is how often one operation is handed out to the same
// manager agent whose next report does not answer it before it fails (an
// agent older than node operations ignores the answer's body).
const maxHandOuts = 3

// ErrNoManager is wrapped when no manager agent can take an operation.
var ErrNoManager = errors.New("enroll: no manager agent to do it")

type pendingOp struct {
	op       api.NodeOp
	queued   time.Time
	to       string // manager node it was handed to; "" = waiting
	handedAt time.Time
	handOuts int
	polled   bool           // handed in the answer to a long poll (poll.go)
	done     chan opOutcome // buffered 1
}

type opOutcome struct {
	res api.NodeOpResult
	by  string // manager node name
	err error  // set instead of res when the queue gave up
}

// opQueue holds the operations in flight and who last could take them.
type opQueue struct {
	mu        sync.Mutex
	ops       []*pendingOp // queue order
	lastMgr   string       // the last eligible manager that reported
	lastMgrAt time.Time

	wake    chan struct{}  // closed when an operation is queued; nil: none made yet (poll.go)
	polls   map[string]int // long polls waiting, by manager node name
	closing chan struct{}  // closed when Serve shuts down; nil outside Serve
}

// SetAvailability drains (api.AvailabilityDrain) or activates
// (api.AvailabilityActive) the swarm node nodeID through a manager; see
// swarm.Operator.
func (s *Server) SetAvailability(ctx context.Context, nodeID, availability string) error {
	do, err := swarm.OpFor(availability, false, false)
	if err != nil {
		return err
	}
	return s.nodeOp(ctx, api.NodeOp{Node: nodeID, Do: do})
}

// Remove removes the swarm node nodeID through a manager (force: even a
// node that is not down); see swarm.Operator. A node the manager does not
// know gives an error wrapping swarm.ErrNoNode.
func (s *Server) Remove(ctx context.Context, nodeID string, force bool) error {
	do, _ := swarm.OpFor("", true, force)
	return s.nodeOp(ctx, api.NodeOp{Node: nodeID, Do: do})
}

var _ swarm.Operator = (*Server)(nil)

func (s *Server) nodeOp(ctx context.Context, op api.NodeOp) error {
	s.init()
	if err := api.ValidateNodeID(op.Node); err != nil {
		return fmt.Errorf("swarm node: %w", err)
	}
	if s.Swarm != nil {
		o, ok := s.Swarm.(swarm.Operator)
		if !ok {
			return fmt.Errorf("%w: the swarm source (%T) cannot change nodes", ErrNoManager, s.Swarm)
		}
		var err error
		switch op.Do {
		case api.OpDrain:
			err = o.SetAvailability(ctx, op.Node, api.AvailabilityDrain)
		case api.OpActivate:
			err = o.SetAvailability(ctx, op.Node, api.AvailabilityActive)
		default:
			err = o.Remove(ctx, op.Node, op.Do == api.OpRemoveForce)
		}
		s.opDone(op, "the site's manager", err)
		return err
	}
	p, err := s.queueOp(op)
	if err != nil {
		return err
	}
	take := time.NewTimer(s.OpTake)
	defer take.Stop()
	for {
		select {
		case out := <-p.done:
			return s.finishOp(op, out)
		case <-take.C:
			if s.dropOp(p, true) {
				err := s.noManager(p.op, s.Now())
				s.opDone(op, "", err)
				return err
			}
		case <-ctx.Done():
			if !s.dropOp(p, false) {
				return s.finishOp(op, <-p.done) // answered meanwhile
			}
			s.ops.mu.Lock()
			to, at := p.to, p.handedAt
			s.ops.mu.Unlock()
			if to == "" {
				return fmt.Errorf("%s swarm node %s: %w (%w)", op.Do, op.Node, s.noManager(op, s.Now()), ctx.Err())
			}
			return fmt.Errorf("%s swarm node %s: manager %s took it %s ago and has not answered: %w", op.Do, op.Node, to, s.Now().Sub(at).Round(time.Second), ctx.Err())
		}
	}
}

// queueOp gives op an ID and queues it, unless no eligible manager agent
// has reported within OpTake (then nothing would take it).
func (s *Server) queueOp(op api.NodeOp) (*pendingOp, error) {
	var b [8]byte
	rand.Read(b[:])
	op.ID = "op-" + hex.EncodeToString(b[:])
	now := s.Now()
	q := &s.ops
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lastMgrAt.IsZero() || now.Sub(q.lastMgrAt) > s.OpTake {
		return nil, s.noManagerLocked(op, now)
	}
	if len(q.ops) >= maxQueuedOps {
		return nil, fmt.Errorf("%s swarm node %s: %d node operations are waiting already; try again later", op.Do, op.Node, len(q.ops))
	}
	p := &pendingOp{op: op, queued: now, done: make(chan opOutcome, 1)}
	q.ops = append(q.ops, p)
	q.wakeLocked()
	return p, nil
}

// dropOp takes p out of the queue; onlyWaiting leaves it when a manager
// holds it. It reports whether p was dropped (false: answered already,
// or held).
func (s *Server) dropOp(p *pendingOp, onlyWaiting bool) bool {
	q := &s.ops
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.ops, p)
	if i < 0 || (onlyWaiting && p.to != "") {
		return false
	}
	q.ops = slices.Delete(q.ops, i, i+1)
	return true
}

func (s *Server) noManager(op api.NodeOp, now time.Time) error {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	return s.noManagerLocked(op, now)
}

func (s *Server) noManagerLocked(op api.NodeOp, now time.Time) error {
	q := &s.ops
	if q.lastMgrAt.IsZero() {
		return fmt.Errorf("%w: %s swarm node %s: no manager agent has reported since the appliance started (a node swarmboot made manager, active in the swarm, must be running its agent)", ErrNoManager, op.Do, op.Node)
	}
	return fmt.Errorf("%w: %s swarm node %s: no manager agent has reported for %s (the last was %s): is it running?", ErrNoManager, op.Do, op.Node, now.Sub(q.lastMgrAt).Round(time.Second), q.lastMgr)
}

// takeOps is called for each report of an eligible manager (after its
// results were taken): it hands out what waits, hands again what this
// manager held and did not answer, and gives up on an operation handed to
// it maxHandOuts times. An operation held by another manager that has not
// answered within OpTake moves to this one. An operation handed to this
// manager by a long poll less than pollAnswerGrace ago is not handed
// again: its agent may be doing it while this report was on its way
// (poll is false for a report; true, the poll hands nothing it holds).
func (s *Server) takeOps(mgr string, now time.Time) []api.NodeOp {
	return s.handOut(mgr, now, false)
}

func (s *Server) handOut(mgr string, now time.Time, poll bool) []api.NodeOp {
	q := &s.ops
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lastMgr, q.lastMgrAt = mgr, now
	var out []api.NodeOp
	keep := q.ops[:0]
	for _, p := range q.ops {
		mine := p.to == mgr
		if mine && (poll || p.polled && now.Sub(p.handedAt) < pollAnswerGrace) {
			keep = append(keep, p)
			continue
		}
		if len(out) < api.MaxNodeOps && (p.to == "" || mine || now.Sub(p.handedAt) > s.OpTake) {
			if p.to == mgr && p.handOuts >= maxHandOuts {
				p.done <- opOutcome{by: mgr, err: fmt.Errorf("%s swarm node %s: the agent of manager %s was given it %d times and never answered: its agent may be older than node operations (update its image)", p.op.Do, p.op.Node, mgr, p.handOuts)}
				continue
			}
			if p.to != mgr {
				p.handOuts = 0
			}
			p.to, p.handedAt, p.polled = mgr, now, poll
			p.handOuts++
			out = append(out, p.op)
		}
		keep = append(keep, p)
	}
	clear(q.ops[len(keep):])
	q.ops = keep
	return out
}

// takeResults delivers a manager's results to the calls waiting for them.
// A result for an operation this manager does not hold (the caller gave
// up, or another manager has it) is logged and dropped.
func (s *Server) takeResults(mgr string, rs []api.NodeOpResult) {
	q := &s.ops
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range rs {
		i := slices.IndexFunc(q.ops, func(p *pendingOp) bool { return p.op.ID == r.ID && p.to == mgr })
		if i < 0 {
			s.Log.Warn("node operation result for no waiting operation: dropped", "node", mgr, "op", r.ID)
			continue
		}
		q.ops[i].done <- opOutcome{res: r, by: mgr}
		q.ops = slices.Delete(q.ops, i, i+1)
	}
}

// finishOp turns a manager's answer into the call's error and records it.
func (s *Server) finishOp(op api.NodeOp, out opOutcome) error {
	err := out.err
	if err == nil && out.res.Error != "" {
		err = fmt.Errorf("%s swarm node %s through manager %s: %s", op.Do, op.Node, out.by, out.res.Error)
		if out.res.NotFound {
			err = fmt.Errorf("%w: %w", swarm.ErrNoNode, err)
		}
	}
	s.opDone(op, out.by, err)
	return err
}
