package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// A manager's agent watches its dockerd's node events (Docker's GET
// /events, type=node: a node joined, left, went down or ready, was
// drained or activated) and sends a report right after one, so the node
// list the appliance holds (pushed with every manager report) follows the
// swarm within a second instead of a heartbeat. Bursts are folded
// (eventQuiet) and reports spaced (eventGap). The stream is reconnected
// when dockerd restarts, and a report follows each reconnection (what
// changed meanwhile went unseen). Every agent watches; a worker's stream
// stays quiet.
const (
	eventQuiet   = 200 * time.Millisecond // report this long after the last event of a burst
	eventMaxWait = time.Second            // ... but no later than this after its first
	eventGap     = 500 * time.Millisecond // at most two event reports a second
	maxEventLine = 64 << 10               // one event's JSON; a longer line ends the stream

	eventHeaderWait = 5 * time.Second // for dockerd to start answering the stream
)

// nodeEvent is what the agent reads of a Docker event.
type nodeEvent struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID string `json:"ID"`
	} `json:"Actor"`
}

// parseEvent reads one line of Docker's event stream. Only node events
// count (the stream is filtered, the check is cheap).
func parseEvent(line []byte) (nodeEvent, error) {
	var ev nodeEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return ev, fmt.Errorf("docker event: %w", err)
	}
	if ev.Type != "node" {
		return ev, fmt.Errorf("docker event of type %q, not node", ev.Type)
	}
	return ev, nil
}

// watchNodeEvents streams dockerd's node events (dial reaches its API)
// and calls seen for each, until the stream ends or ctx does; connected
// is called once the stream is open, which must be within headerWait.
func watchNodeEvents(ctx context.Context, dial func(context.Context) (net.Conn, error), headerWait time.Duration, connected, seen func()) error {
	// A dockerd going down may take the connection and never answer:
	// the stream must start within eventHeaderWait or it is tried again.
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		DisableKeepAlives: true, ResponseHeaderTimeout: headerWait}
	defer tr.CloseIdleConnections()
	q := url.Values{"filters": {`{"type":["node"]}`}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("docker events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker events: %s", resp.Status)
	}
	connected()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if _, err := parseEvent(sc.Bytes()); err != nil {
			return err
		}
		seen()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("docker events: %w", err)
	}
	return errors.New("docker events: stream ended")
}

// debounce calls fire after each burst of signals on in: eventQuiet after
// the last signal (at most eventMaxWait after the first), and never
// sooner than gap after the previous call returned.
func debounce(ctx context.Context, in <-chan struct{}, quiet, maxWait, gap time.Duration, fire func()) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
		}
		first := time.Now()
		t := time.NewTimer(quiet)
	burst:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-in:
				t.Reset(min(quiet, max(0, maxWait-time.Since(first))))
			case <-t.C:
				break burst
			}
		}
		if w := gap - time.Since(last); !last.IsZero() && w > 0 {
			if sleep(ctx, w) != nil {
				return
			}
		}
		fire()
		last = time.Now()
	}
}

// eventsLoop watches node events and reports after them. It watches
// whatever the last report said: a worker's stream stays quiet (only
// managers emit node events), and a manager whose dockerd restarts
// reports not-a-manager while it goes down — the reconnected stream's
// report and the events of its coming back as manager must still come
// (the long poll waits for them, not for the next heartbeat).
func (a *Agent) eventsLoop(ctx context.Context) {
	kick := make(chan struct{}, 1)
	signal := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		debounce(ctx, kick, eventQuiet, eventMaxWait, eventGap, func() {
			a.cfg.Log.Debug("report after docker node events")
			if err := a.report(ctx); err != nil && ctx.Err() == nil {
				a.cfg.Log.Warn("report after a node event failed", "err", err)
			}
		})
	}()
	defer func() { <-done }()
	fails := 0
	for ctx.Err() == nil {
		err := watchNodeEvents(ctx, a.docker.c.Dialer(), eventHeaderWait, func() {
			a.cfg.Log.Debug("watching docker node events", "reconnected", fails > 0)
			if fails > 0 {
				signal() // catch up on what changed while the stream was down
			}
			fails = 0
		}, signal)
		if ctx.Err() != nil {
			return
		}
		wait := min(backoff(fails, 5*time.Second), 5*time.Second)
		fails++
		a.cfg.Log.Debug("docker node events ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		sleep(ctx, wait)
	}
}
