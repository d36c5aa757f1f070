package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// streamLines answers a long operation's progress (a roll, a destroy) as
// NDJSON, one line per value from ch, flushed as it comes, until ch is
// closed or the caller goes away (the operation goes on in the
// appliance). The server's read and write timeouts would cut a stream of
// many minutes: they are lifted for this response.
func streamLines[L any](w http.ResponseWriter, r *http.Request, ch <-chan L, log *slog.Logger, what string) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			log.Info("admin: the caller stopped following the " + what + "; it goes on")
			return
		case line, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(line) != nil {
				return
			}
			_ = rc.Flush()
		}
	}
}

// followLines reads a progress stream streamLines writes, calling line
// for each until one is the last (end), ctx ends, or the stream breaks;
// ended says what to do when it stops short.
func followLines[L any](ctx context.Context, c *Client, resp *http.Response, end func(*L) bool, line func(L), ended string) (*L, error) {
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxResponse))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		var l L
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("appliance (admin socket %s): bad progress line: %w", c.Socket, err)
		}
		line(l)
		if end(&l) {
			return &l, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("appliance (admin socket %s): progress stream: %w", c.Socket, err)
	}
	return nil, fmt.Errorf("appliance (admin socket %s): %s", c.Socket, ended)
}
