package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// PathDestroy deletes VMs through the running appliance: POST
// DestroyRequest → a stream of DestroyLine (application/x-ndjson) until
// the destroy ends, or DestroyPlanResponse for a dry run.
const PathDestroy = "/v1/destroy"

// maxDestroyNames bounds the VMs and groups one request names.
const maxDestroyNames = 256

// DestroyRequest names the VMs to destroy as `swarmboot destroy` does:
// those of Groups plus Names; both empty means every VM swarmboot created
// in the site's folder.
type DestroyRequest struct {
	Groups []string `json:"groups,omitempty"`
	Names  []string `json:"names,omitempty"`
	// DrainTimeout bounds each swarm node's drain (a Go duration; "" →
	// the appliance's default, 2m).
	DrainTimeout string `json:"drain_timeout,omitempty"`
	// Force destroys the swarm's last manager(s) even though workers stay.
	Force  bool `json:"force,omitempty"`
	DryRun bool `json:"dry_run,omitempty"`
}

// DestroyLine is one progress line of a destroy; the last one has End
// set, with Error when it did not finish.
type DestroyLine struct {
	Time    time.Time `json:"time"`
	VM      string    `json:"vm,omitempty"`
	Step    string    `json:"step"`
	Message string    `json:"message,omitempty"`
	End     bool      `json:"end,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// DestroyPlanResponse is a dry run: per VM, in order, what happens to it
// and to its swarm node.
type DestroyPlanResponse struct {
	Lines []string `json:"lines"`
}

// Destroyer destroys VMs inside the running appliance (appliance/daemon),
// which holds the vCenter session and talks to the swarm's managers.
type Destroyer interface {
	// PlanDestroy checks a destroy and describes it, touching nothing.
	PlanDestroy(ctx context.Context, req DestroyRequest) ([]string, error)
	// StartDestroy checks a destroy and runs it in the background; its
	// progress comes on the channel, closed after the End line.
	StartDestroy(ctx context.Context, req DestroyRequest) (<-chan DestroyLine, error)
}

// ErrDestroyRunning is a destroy asked for while another one or a roll
// runs.
var ErrDestroyRunning = errors.New("admin: a destroy or a roll is running")

// Validate checks the names and the drain timeout.
func (r *DestroyRequest) Validate() error {
	if len(r.Groups)+len(r.Names) > maxDestroyNames {
		return fmt.Errorf("more than %d groups and VMs", maxDestroyNames)
	}
	for _, g := range r.Groups {
		if g == "" {
			return errors.New("an empty group name")
		}
		if err := checkName("group", g); err != nil {
			return err
		}
	}
	for _, n := range r.Names {
		if n == "" {
			return errors.New("an empty VM name")
		}
		if err := checkName("name", n); err != nil {
			return err
		}
	}
	_, err := r.DrainDuration()
	return err
}

// DrainDuration is DrainTimeout parsed (0 when empty).
func (r *DestroyRequest) DrainDuration() (time.Duration, error) {
	return optDuration("drain_timeout", r.DrainTimeout, "2m")
}

func (s *Server) handleDestroy(w http.ResponseWriter, r *http.Request) {
	var req DestroyRequest
	if err := decode(r.Body, &req); err != nil {
		reply(w, http.StatusBadRequest, ErrorResponse{err.Error()})
		return
	}
	if s.Ops.Destroyer == nil {
		reply(w, http.StatusBadRequest, ErrorResponse{ErrNeedsAppliance.Error()})
		return
	}
	c := callerOf(r)
	log := s.log().With("uid", c.UID, "pid", c.PID)
	refuse := func(err error) {
		log.Warn("admin: destroy refused", "err", err)
		code := http.StatusBadRequest
		if errors.Is(err, ErrDestroyRunning) {
			code = http.StatusConflict
		}
		reply(w, code, ErrorResponse{err.Error()})
	}
	if req.DryRun {
		lines, err := s.Ops.Destroyer.PlanDestroy(r.Context(), req)
		if err != nil {
			refuse(err)
			return
		}
		reply(w, http.StatusOK, DestroyPlanResponse{Lines: lines})
		return
	}
	ch, err := s.Ops.Destroyer.StartDestroy(r.Context(), req)
	if err != nil {
		refuse(err)
		return
	}
	log.Info("admin: destroy started", "groups", len(req.Groups), "names", len(req.Names))
	streamLines(w, r, ch, log, "destroy")
}

// PlanDestroy asks what a destroy would do.
func (c *Client) PlanDestroy(ctx context.Context, req DestroyRequest) ([]string, error) {
	req.DryRun = true
	var out DestroyPlanResponse
	if err := c.do(ctx, http.MethodPost, PathDestroy, &req, &out); err != nil {
		return nil, err
	}
	return out.Lines, nil
}

// Destroy starts a destroy and calls line for each progress line until
// it ends (the End line), ctx ends (it goes on in the appliance), or the
// stream breaks. A refused destroy is an error saying why.
func (c *Client) Destroy(ctx context.Context, req DestroyRequest, line func(DestroyLine)) (*DestroyLine, error) {
	req.DryRun = false
	resp, err := c.post(ctx, PathDestroy, &req)
	if err != nil {
		return nil, err
	}
	return followLines(ctx, c, resp, func(l *DestroyLine) bool { return l.End }, line,
		"the progress stream ended before the destroy did (did the appliance stop?): see swarmboot node ls and the appliance's log")
}
