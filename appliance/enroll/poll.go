package enroll

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// The node-operations long poll (api.PathOps): an active manager's agent
// keeps a GET open, and an operation queued by SetAvailability or Remove
// is handed to it at once instead of in the answer to its next heartbeat.
// The results still come back in a report (the agent sends it at once).
// Who may poll is who may take operations in a report's answer
// (reportOps): a node the appliance made manager whose last report says
// it is an active manager with control available, of a swarm swarmboot
// made. A node has at most api.MaxPollsPerNode polls waiting; each waits
// at most api.MaxPollWait; Serve's shutdown answers every waiting poll
// (204) before it waits for the connections to go idle.

// pollAnswerGrace is how long an operation handed out by a poll is not
// handed again to the same manager's reports: its agent does it and then
// reports, and a heartbeat crossing that must not make it do it twice.
// After that a report hands it again (the poll's answer was lost).
const pollAnswerGrace = 30 * time.Second

// wakeLocked wakes the waiting polls (q.mu held).
func (q *opQueue) wakeLocked() {
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

// waitCh is closed when an operation is queued after this call.
func (q *opQueue) waitCh() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.wake == nil {
		q.wake = make(chan struct{})
	}
	return q.wake
}

// enterPoll counts a waiting poll of node; false when it has
// api.MaxPollsPerNode already or the server is shutting down. The
// returned channel is closed when Serve shuts down.
func (q *opQueue) enterPoll(node string) (closing <-chan struct{}, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing != nil && isClosed(q.closing) {
		return nil, false
	}
	if q.polls == nil {
		q.polls = map[string]int{}
	}
	if q.polls[node] >= api.MaxPollsPerNode {
		return nil, false
	}
	q.polls[node]++
	return q.closing, true
}

func (q *opQueue) leavePoll(node string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.polls[node]--; q.polls[node] <= 0 {
		delete(q.polls, node)
	}
}

// waitingPolls is the number of polls waiting now (tests).
func (q *opQueue) waitingPolls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, c := range q.polls {
		n += c
	}
	return n
}

// openPolls starts a Serve: polls are taken until the returned func is
// called, which answers those waiting.
func (q *opQueue) openPolls() (shut func()) {
	c := make(chan struct{})
	q.mu.Lock()
	q.closing = c
	q.mu.Unlock()
	return func() { close(c) }
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// pollWait reads a poll's wait parameter: api.DefaultPollWait when
// missing, cut to api.MaxPollWait, refused when not a positive duration.
func pollWait(v string) (time.Duration, error) {
	if v == "" {
		return api.DefaultPollWait, nil
	}
	if len(v) > 32 {
		return 0, errors.New("wait: longer than 32 bytes; want a Go duration such as 25s")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("wait %q: want a positive Go duration such as 25s", v)
	}
	return min(d, api.MaxPollWait), nil
}

func (s *Server) handleOps(w http.ResponseWriter, r *http.Request, n *store.Node) {
	wait, err := pollWait(r.URL.Query().Get(api.PollWaitParam))
	if err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	if rep, _ := s.lastReport(n); s.Swarm != nil || n.Role != api.RoleManager || rep == nil || rep.Swarm.State != "active" || !rep.Swarm.ControlAvailable {
		refuse(w, http.StatusConflict, "node operations go to an active manager swarmboot made: this node's last report is not one (keep heartbeating)")
		return
	}
	closing, ok := s.ops.enterPoll(n.Name)
	if !ok {
		if closing == nil && s.ops.closingNow() {
			refuse(w, http.StatusServiceUnavailable, "the appliance is shutting down")
			return
		}
		s.Log.Warn("node operations poll refused", "node", n.Name, "reason", "too many waiting")
		refuse(w, http.StatusTooManyRequests, "this node has polls waiting already")
		return
	}
	defer s.ops.leavePoll(n.Name)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		wake := s.ops.waitCh() // before taking: a queue in between wakes us
		if r.Context().Err() != nil {
			return
		}
		if ops := s.handOut(n.Name, s.Now(), true); len(ops) > 0 {
			s.Log.Debug("node operations handed to a waiting poll", "node", n.Name, "ops", len(ops))
			writeJSON(w, http.StatusOK, api.ReportAnswer{Ops: ops})
			return
		}
		select {
		case <-wake:
		case <-t.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-closing:
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (q *opQueue) closingNow() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing != nil && isClosed(q.closing)
}
