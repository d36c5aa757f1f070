package agent

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// oldApplianceWait is how long the poll rests after an appliance older
// than the long poll answered 404 (it may be updated meanwhile).
const oldApplianceWait = 10 * time.Minute

// PollOps is the node-operations long poll (api.PathOps): it returns the
// operations the appliance hands out, or none when the wait ended. wait
// is what the agent asks for; the appliance holds at most
// api.MaxPollWait.
func (c *Client) PollOps(ctx context.Context, wait time.Duration) (api.ReportAnswer, error) {
	var a api.ReportAnswer
	err := c.do(ctx, http.MethodGet, api.PathOps+"?"+url.Values{api.PollWaitParam: {wait.String()}}.Encode(), nil, &a)
	if len(a.Ops) > api.MaxNodeOps {
		a.Ops = a.Ops[:api.MaxNodeOps]
	}
	return a, err
}

// setSwarm keeps what the last report said of the swarm and wakes the
// loops waiting for the node to be a manager.
func (a *Agent) setSwarm(s api.SwarmState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	was := a.swarm.State == "active" && a.swarm.ControlAvailable
	if now := s.State == "active" && s.ControlAvailable; now != was {
		a.cfg.Log.Debug("manager of the swarm (node operations, node events)", "now", now, "state", s.State, "control", s.ControlAvailable)
	}
	if a.sent != nil {
		close(a.sent)
		a.sent = nil
	}
	if a.swarm != s && a.wake != nil {
		close(a.wake)
		a.wake = nil
	}
	a.swarm = s
}

// waitManager returns true once the last report found this node an
// active manager, false when ctx ended first.
func (a *Agent) waitManager(ctx context.Context) bool {
	for {
		a.mu.Lock()
		ok := a.swarm.State == "active" && a.swarm.ControlAvailable
		if a.wake == nil {
			a.wake = make(chan struct{})
		}
		wake := a.wake
		a.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		}
	}
}

// waitReport returns after the next report, or limit, or ctx's end.
func (a *Agent) waitReport(ctx context.Context, limit time.Duration) {
	a.mu.Lock()
	if a.sent == nil {
		a.sent = make(chan struct{})
	}
	sent := a.sent
	a.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-sent:
	case <-t.C:
	}
}

// idleWait is how long the poll rests after a 429: a heartbeat, at most
// 5 s.
func (a *Agent) idleWait() time.Duration { return min(a.cfg.Heartbeat, 5*time.Second) }

// pollLoop keeps a long poll open while this node is an active manager,
// does the operations it brings and reports their results at once. An
// appliance without the poll (404) leaves the heartbeat to bring them.
func (a *Agent) pollLoop(ctx context.Context) {
	fails := 0
	for ctx.Err() == nil {
		if !a.waitManager(ctx) {
			return
		}
		ans, err := a.client.PollOps(ctx, api.MaxPollWait)
		if ctx.Err() != nil {
			return
		}
		var se *StatusError
		switch {
		case err == nil && len(ans.Ops) > 0:
			fails = 0
			a.cfg.Log.Debug("node operations from the long poll", "ops", len(ans.Ops))
			if err := a.answerOps(ctx, ans.Ops); err != nil {
				a.cfg.Log.Warn("node operation results not reported (the appliance hands them again)", "err", err)
			}
		case err == nil:
			fails = 0 // the wait ended: ask again
		case errors.As(err, &se) && se.Code == http.StatusNotFound:
			a.say("poll-404", "the appliance has no node-operations poll (older than this agent): operations come with the heartbeat")
			sleep(ctx, oldApplianceWait)
		case errors.As(err, &se) && se.Code == http.StatusConflict:
			// Not an active manager to the appliance (an existing
			// swarm's site answers so forever): ask again once another
			// report may have changed its mind.
			a.cfg.Log.Debug("node operations poll refused", "err", err)
			a.waitReport(ctx, 2*a.cfg.Heartbeat)
		case errors.As(err, &se) && se.Code == http.StatusTooManyRequests:
			a.cfg.Log.Debug("node operations poll refused", "err", err)
			sleep(ctx, a.idleWait())
		default:
			// Capped at a heartbeat: an appliance back from a restart
			// should not wait on a long backoff to hand operations out.
			wait := min(backoff(fails, a.cfg.BackoffMax), max(a.cfg.Heartbeat, time.Second))
			fails++
			a.cfg.Log.Warn("node operations poll failed", "err", err, "retry_in", wait.Round(time.Millisecond))
			sleep(ctx, wait)
		}
	}
}
