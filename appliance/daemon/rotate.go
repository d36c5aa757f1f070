package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/rotate"
	"github.com/swarmboot/swarmboot/appliance/store"
)

// rotations runs at most one roll (appliance/rotate) at a time, on Run's
// context: a roll outlives the admin call that started it.
type rotations struct {
	mu      sync.Mutex
	running bool
	ctx     context.Context // Run's; nil before Run
	wg      sync.WaitGroup
}

// roller is a rotate.Roller on this appliance: the agent API drains and
// activates nodes through a manager and knows their heartbeats, the store
// says what a VM boots, and VMs are reset with Config.ResetVM or through
// vCenter.
func (d *Daemon) roller() (*rotate.Roller, error) {
	if d.cfg.Artifacts == "" {
		return nil, fmt.Errorf("%w: the appliance serves no artifacts directory (--artifacts), so there is no build to roll onto", rotate.ErrRefused)
	}
	r := &rotate.Roller{Store: d.st, Swarm: d.api, Nodes: d.api, Machines: machines{d}, Artifacts: d.cfg.Artifacts,
		Boot: d.groupBoot, Log: d.log.With("part", "rotate"), Poll: d.cfg.RotatePoll}
	if d.vc != nil {
		r.ISO = machines{d}
	}
	return r, nil
}

// groupBoot is the boot mode the site gives group ("" without a site).
func (d *Daemon) groupBoot(group string) string {
	if d.cfg.Site == nil {
		return ""
	}
	if g := d.cfg.Site.Group(group); g != nil {
		return g.Boot
	}
	return ""
}

// machines resets VMs, records their image marker and, for iso-boot
// VMs, changes their ISO.
type machines struct{ d *Daemon }

func (m machines) Reset(ctx context.Context, vm string) error {
	if m.d.cfg.ResetVM != nil {
		return m.d.cfg.ResetVM(ctx, vm)
	}
	if m.d.vc == nil {
		return fmt.Errorf("reset VM %s: the appliance has no vCenter (run it with --site) to reset it through: reset it by hand now, the roll waits for it", vm)
	}
	return m.d.vc.reset(ctx, vm)
}

func (m machines) SetImage(ctx context.Context, vm, image string) error {
	if m.d.vc == nil {
		return nil
	}
	err := m.d.vc.setImage(ctx, vm, image)
	if errors.Is(err, store.ErrNotFound) {
		return nil // not a vCenter VM of ours: the store is all there is
	}
	return err
}

// InsertISO pushes the build's ISO and puts it in the VM's CD-ROM
// (rotate.ISOs; only with a vCenter).
func (m machines) InsertISO(ctx context.Context, vm, image string) (string, error) {
	return m.d.vc.insertISO(ctx, m.d.cfg.Artifacts, vm, image)
}

func toRequest(req admin.RotateRequest) (rotate.Request, error) {
	out := rotate.Request{AllowQuorumLoss: req.AllowQuorumLoss}
	if err := req.Validate(); err != nil {
		return out, err
	}
	out.Timeout, _ = req.Duration()
	out.DrainWait, _ = req.DrainDuration()
	for _, g := range req.Groups {
		out.Targets = append(out.Targets, rotate.Target{Group: g.Group, Image: g.Image})
	}
	return out, nil
}

// PlanRotation says what a roll would do, in order, touching nothing
// (admin.Rotator).
func (d *Daemon) PlanRotation(ctx context.Context, req admin.RotateRequest) ([]string, error) {
	r, err := d.roller()
	if err != nil {
		return nil, err
	}
	rr, err := toRequest(req)
	if err != nil {
		return nil, err
	}
	p, err := r.Plan(ctx, rr)
	if err != nil {
		return nil, err
	}
	return p.Lines(), nil
}

// RotationRunning says whether a roll is under way (admin.Rotator).
func (d *Daemon) RotationRunning() bool {
	d.rot.mu.Lock()
	defer d.rot.mu.Unlock()
	return d.rot.running
}

// StartRotation checks a roll and runs it in the background until it
// ends or the appliance stops; its progress comes on the channel, which
// is closed after the End line (admin.Rotator).
func (d *Daemon) StartRotation(ctx context.Context, req admin.RotateRequest) (<-chan admin.RotateLine, error) {
	rr, err := toRequest(req)
	if err != nil {
		return nil, err
	}
	r, runCtx, err := d.claimRoller()
	if err != nil {
		return nil, err
	}
	if _, err := r.Plan(ctx, rr); err != nil {
		d.releaseRotation()
		return nil, err
	}
	ch := make(chan admin.RotateLine, 256)
	send := func(l admin.RotateLine) {
		select {
		case ch <- l:
		default: // nobody reads fast enough: the store and the log have it
		}
	}
	go func() {
		defer close(ch)
		rot, err := r.Run(runCtx, rr, func(p rotate.Progress) {
			send(admin.RotateLine{Time: p.Time, VM: p.VM, Step: p.Step, Message: p.Message})
		})
		end := admin.RotateLine{Time: time.Now().UTC(), Step: "end", End: true}
		if rot != nil {
			end.State, end.Message = rot.State, rot.Message
		}
		if err != nil {
			end.Error = err.Error()
			if end.State == "" {
				end.State = store.RotationStopped
			}
		}
		// Released before the End line, so whoever reads it finds no
		// roll running; the End line waits a little for a slow reader.
		d.releaseRotation()
		select {
		case ch <- end:
		case <-time.After(5 * time.Second):
		}
	}()
	return ch, nil
}

// Rotate runs a roll to its end, or until ctx ends or the appliance
// stops (for Go callers such as the lab; the CLI goes through the admin
// socket). Only one roll runs at a time.
func (d *Daemon) Rotate(ctx context.Context, req rotate.Request, emit func(rotate.Progress)) (*store.Rotation, error) {
	r, runCtx, err := d.claimRoller()
	if err != nil {
		return nil, err
	}
	defer d.releaseRotation()
	// The roll also ends with the appliance (Run waits for it).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()
	return r.Run(ctx, req, emit)
}

// claimRoller is the roller for a roll about to run, with the claim
// (claimRotation) taken: the caller ends it with releaseRotation.
func (d *Daemon) claimRoller() (*rotate.Roller, context.Context, error) {
	r, err := d.roller()
	if err != nil {
		return nil, nil, err
	}
	runCtx, err := d.claimRotation()
	if err != nil {
		return nil, nil, err
	}
	return r, runCtx, nil
}

// claimRotation marks a roll running (counted in wg, which Run waits
// for) and returns Run's context, or refuses when one runs or the
// appliance does not. Every claim is ended by one releaseRotation.
func (d *Daemon) claimRotation() (context.Context, error) {
	d.rot.mu.Lock()
	defer d.rot.mu.Unlock()
	if d.rot.ctx == nil || d.rot.ctx.Err() != nil {
		return nil, errors.New("rotate: the appliance is not running (a roll needs Run)")
	}
	if d.rot.running {
		return nil, fmt.Errorf("%w: see swarmboot rotate status; wait for it to end, then run this one", admin.ErrRotationRunning)
	}
	d.rot.running = true
	d.rot.wg.Add(1)
	return d.rot.ctx, nil
}

// rotCtx is Run's context once Run started (nil before).
func (d *Daemon) rotCtx() context.Context {
	d.rot.mu.Lock()
	defer d.rot.mu.Unlock()
	return d.rot.ctx
}

// releaseRotation ends the claim: no roll runs, and Run need not wait.
func (d *Daemon) releaseRotation() {
	d.rot.mu.Lock()
	d.rot.running = false
	d.rot.mu.Unlock()
	d.rot.wg.Done()
}

// startRotations marks a roll the last run left running as interrupted
// and lets rolls run on ctx.
func (d *Daemon) startRotations(ctx context.Context) {
	if rot, err := rotate.Interrupted(d.st, time.Now()); err != nil {
		d.log.Warn("rotate: read the last roll", "err", err)
	} else if rot != nil {
		d.log.Warn("rotate: the last roll was interrupted when the appliance stopped", "started", rot.Started, "what_to_do", rot.Message)
	}
	d.rot.mu.Lock()
	d.rot.ctx = ctx
	d.rot.mu.Unlock()
}
