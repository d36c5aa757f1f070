package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/appliance/rotate"
)

// resetVM is the appliance's reset for a roll (daemon.Config.ResetVM):
// the QEMU machine that plays the simulator's VM vmName gets a QMP
// system_reset, as vCenter's ResetVM_Task gives a VM; one powered off to
// keep within MaxVMs is started from its disk.
func (l *Lab) resetVM(ctx context.Context, vmName string) error {
	l.power.Lock()
	defer l.power.Unlock()
	var mc *Machine
	for _, m := range l.Machines {
		if m.Name == vmName {
			mc = m
		}
	}
	if mc == nil {
		return fmt.Errorf("lab: no QEMU machine plays VM %s", vmName)
	}
	return l.reset(ctx, mc)
}

// reset reboots mc: QMP system_reset when it runs, a cold start from its
// disk when not. Callers hold l.power.
func (l *Lab) reset(ctx context.Context, mc *Machine) error {
	if mc.vm == nil {
		return l.start(ctx, mc)
	}
	at := time.Now()
	if err := mc.vm.Reset(); err != nil {
		return fmt.Errorf("lab: reset %s: %w", mc.Name, err)
	}
	mc.started = at
	fmt.Fprintf(l.opt.Out, "lab: %s reset (QMP system_reset)\n", mc.Name)
	return nil
}

// RotateWorkers renews the workers the way a site does: it builds the
// next generation of the lab image (lab-2, lab-3, …: the yml with
// GenerationFile, so another version) and rolls every worker group onto it
// with the appliance's roll, as `swarmboot rotate` does: one worker at a
// time drained through the manager's agent, reset into the new image,
// waited for until it reports the new version from the same swarm node and
// the manager lists it ready, then activated. The manager keeps the first
// image. It returns the new image's version.
func (l *Lab) RotateWorkers(ctx context.Context) (string, error) {
	l.generation++
	name := fmt.Sprintf("lab-%d", l.generation)
	m, err := l.buildImage(ctx, name, l.generation)
	if err != nil {
		return "", err
	}
	var req rotate.Request
	for _, g := range l.site.Groups {
		if g.Role == "worker" && g.Count > 0 {
			req.Targets = append(req.Targets, rotate.Target{Group: g.Name, Image: name})
		}
	}
	req.Timeout = l.opt.StageTimeout
	_, err = l.d.Rotate(ctx, req, func(p rotate.Progress) {
		fmt.Fprintf(l.opt.Out, "lab: %s\n", p)
	})
	if err != nil {
		return m.Version, fmt.Errorf("lab: roll the workers onto %s: %w", m.Version, err)
	}
	return m.Version, nil
}
