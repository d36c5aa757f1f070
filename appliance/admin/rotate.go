package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
)

// PathRotate is the roll of nodes onto a new image: POST RotateRequest →
// a stream of RotateLine (application/x-ndjson) until the roll ends, or
// RotatePlanResponse for a dry run; GET → RotationResponse.
const PathRotate = "/v1/rotate"

// maxGroups bounds the groups of one roll.
const maxGroups = 64

// ErrRotationRunning is a roll asked for while another one runs.
var ErrRotationRunning = errors.New("admin: a roll is running")

// RotateRequest asks the running appliance to roll groups onto images.
type RotateRequest struct {
	Groups []RotateGroup `json:"groups"`
	// Timeout bounds each node's roll (a Go duration; "" → the
	// appliance's default, 15m).
	Timeout string `json:"timeout,omitempty"`
	// DrainTimeout bounds the wait, once a node is listed drained, for
	// its swarm tasks to leave before its reset (a Go duration; "" →
	// the appliance's default, 5m).
	DrainTimeout    string `json:"drain_timeout,omitempty"`
	AllowQuorumLoss bool   `json:"allow_quorum_loss,omitempty"`
	DryRun          bool   `json:"dry_run,omitempty"`
}

// RotateGroup is one group and the build its VMs boot next.
type RotateGroup struct {
	Group string `json:"group"`
	Image string `json:"image"`
}

// RotateLine is one progress line of a roll. The last one has End set,
// with the roll's State and, when it did not finish, Error saying what to
// do.
type RotateLine struct {
	Time    time.Time `json:"time"`
	VM      string    `json:"vm,omitempty"`
	Step    string    `json:"step"`
	Message string    `json:"message,omitempty"`
	End     bool      `json:"end,omitempty"`
	State   string    `json:"state,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// RotatePlanResponse is a dry run: what the roll would do, in order.
type RotatePlanResponse struct {
	Lines []string `json:"lines"`
}

// RotationResponse is the latest roll as the store records it (nil: none
// ever ran); Running says whether it is under way in this appliance.
type RotationResponse struct {
	Rotation *store.Rotation `json:"rotation"`
	Running  bool            `json:"running"`
}

// Rotator runs rolls inside the appliance (appliance/daemon): it waits
// for heartbeats, so only the running appliance has one.
type Rotator interface {
	// PlanRotation checks a roll and describes it without touching
	// anything.
	PlanRotation(ctx context.Context, req RotateRequest) ([]string, error)
	// StartRotation checks a roll and starts it in the background; its
	// progress comes on the channel, which is closed after the End line.
	// The roll goes on when nobody reads (lines are then dropped).
	StartRotation(ctx context.Context, req RotateRequest) (<-chan RotateLine, error)
	// RotationRunning says whether a roll is under way.
	RotationRunning() bool
}

// Validate checks the request's fields (the appliance checks the groups
// and images themselves).
func (r *RotateRequest) Validate() error {
	if len(r.Groups) == 0 {
		return errors.New("name the groups to roll (group and image)")
	}
	if len(r.Groups) > maxGroups {
		return fmt.Errorf("more than %d groups", maxGroups)
	}
	for _, g := range r.Groups {
		if g.Group == "" || g.Image == "" {
			return errors.New("every group needs its name and the image to roll it onto")
		}
		if err := checkName("group", g.Group); err != nil {
			return err
		}
		if err := checkName("image", g.Image); err != nil {
			return err
		}
	}
	if _, err := r.Duration(); err != nil {
		return err
	}
	if _, err := r.DrainDuration(); err != nil {
		return err
	}
	return nil
}

// DrainDuration is DrainTimeout parsed (0 when empty).
func (r *RotateRequest) DrainDuration() (time.Duration, error) {
	return optDuration("drain_timeout", r.DrainTimeout, "5m")
}

// Duration is Timeout parsed (0 when empty).
func (r *RotateRequest) Duration() (time.Duration, error) {
	return optDuration("timeout", r.Timeout, "15m")
}

// Rotation is the latest roll the store records (nil when none ran).
func (o *Ops) Rotation() (*RotationResponse, error) {
	out := &RotationResponse{}
	err := o.Store.View(func(tx *store.Tx) error {
		rot, err := tx.Rotation()
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		out.Rotation = rot
		return err
	})
	if o.Rotator != nil {
		out.Running = o.Rotator.RotationRunning()
	}
	return out, err
}

func (s *Server) handleRotation(w http.ResponseWriter, r *http.Request) {
	resp, err := s.Ops.Rotation()
	if err != nil {
		s.log().Error("admin: read the rotation", "err", err)
		reply(w, http.StatusInternalServerError, ErrorResponse{"read the rotation: " + err.Error()})
		return
	}
	reply(w, http.StatusOK, resp)
}

func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	var req RotateRequest
	if err := decode(r.Body, &req); err != nil {
		reply(w, http.StatusBadRequest, ErrorResponse{err.Error()})
		return
	}
	if s.Ops.Rotator == nil {
		reply(w, http.StatusBadRequest, ErrorResponse{ErrNeedsAppliance.Error()})
		return
	}
	c := callerOf(r)
	log := s.log().With("uid", c.UID, "pid", c.PID)
	if req.DryRun {
		lines, err := s.Ops.Rotator.PlanRotation(r.Context(), req)
		if err != nil {
			s.rotateRefused(w, log, err)
			return
		}
		reply(w, http.StatusOK, RotatePlanResponse{Lines: lines})
		return
	}
	ch, err := s.Ops.Rotator.StartRotation(r.Context(), req)
	if err != nil {
		s.rotateRefused(w, log, err)
		return
	}
	log.Info("admin: roll started", "groups", len(req.Groups))
	streamLines(w, r, ch, log, "roll")
}

func (s *Server) rotateRefused(w http.ResponseWriter, log interface{ Warn(string, ...any) }, err error) {
	log.Warn("admin: roll refused", "err", err)
	code := http.StatusBadRequest
	if errors.Is(err, ErrRotationRunning) {
		code = http.StatusConflict
	}
	reply(w, code, ErrorResponse{err.Error()})
}

// Rotation asks for the latest roll.
func (c *Client) Rotation(ctx context.Context) (*RotationResponse, error) {
	var out RotationResponse
	if err := c.do(ctx, http.MethodGet, PathRotate, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PlanRotation asks what a roll would do.
func (c *Client) PlanRotation(ctx context.Context, req RotateRequest) ([]string, error) {
	req.DryRun = true
	var out RotatePlanResponse
	if err := c.do(ctx, http.MethodPost, PathRotate, &req, &out); err != nil {
		return nil, err
	}
	return out.Lines, nil
}

// Rotate starts a roll and calls line for each progress line until the
// roll ends (the End line), ctx ends (the roll goes on in the appliance),
// or the stream breaks. A refused roll is an error saying why.
func (c *Client) Rotate(ctx context.Context, req RotateRequest, line func(RotateLine)) (*RotateLine, error) {
	req.DryRun = false
	resp, err := c.post(ctx, PathRotate, &req)
	if err != nil {
		return nil, err
	}
	return followLines(ctx, c, resp, func(l *RotateLine) bool { return l.End }, line,
		"the progress stream ended before the roll did (did the appliance stop?): see swarmboot rotate status")
}
