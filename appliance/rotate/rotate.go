// Package rotate rolls a site's VMs onto a new image, one node at a time:
// the renewal story of a RAM-booted fleet ("a new Docker every quarter:
// build a new image, roll the workers"). It runs inside the appliance
// (appliance/daemon), because it waits for the nodes' heartbeats.
//
// For each node, strictly one at a time, workers first, then managers
// (the swarm leader last, never two managers down at once, and a manager
// whose reboot would cost the swarm its raft quorum is refused):
//
//  1. drain it through a manager, wait until the manager lists it
//     drained, then until its swarm tasks have stopped and left it (the
//     manager's agent counts them; Request.DrainWait bounds the wait; an
//     agent too old to count them is noted and not waited for);
//  2. set its VM's image in the store to the target build (the netboot
//     booter serves the store's image);
//  3. reset the VM;
//  4. wait until its agent reports the target image version, swarm
//     active with the same swarm node ID, and the manager lists it ready;
//  5. activate it, and wait until it is listed active.
//
// Nodes already on the target version and active are skipped, so running
// the same roll again after a crash or a failure resumes it; the progress
// is kept in the store (store.Rotation), so "swarmboot rotate status" and
// a restarted appliance show where it stopped. A node that does not get
// through in Request.Timeout stops the roll and stays drained; the error
// says what to do.
//
// Netbooted (pxe) groups boot the store's image, so step 2 is all they
// need. For an iso-boot group step 2 pushes the build's ISO (NAME.iso) to
// the datastore and points the VM's CD-ROM at it (Roller.ISO); without
// one, Plan refuses such a group and says what to do by hand.
//
//	r := &rotate.Roller{Store: st, Swarm: api, Nodes: api, Machines: vms, Artifacts: "out"}
//	rot, err := r.Run(ctx, rotate.Request{Targets: []rotate.Target{{Group: "workers", Image: "worker"}}},
//		func(p rotate.Progress) { fmt.Println(p) })
package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Defaults of a Roller and a Request.
const (
	DefaultTimeout = 15 * time.Minute
	DefaultPoll    = time.Second
	DefaultGrace   = 5 * time.Second
	// DefaultWaitNote is how often a wait says it is still waiting.
	DefaultWaitNote = time.Minute
)

// Sentinel errors; a refusal wraps ErrRefused and one of the more precise
// ones.
var (
	ErrRefused = errors.New("rotate: refused")
	ErrQuorum  = fmt.Errorf("%w: would lose the managers' quorum", ErrRefused)
	ErrISO     = fmt.Errorf("%w: iso groups cannot be rolled yet", ErrRefused)
	ErrStopped = errors.New("rotate: stopped")
)

// Operator changes a swarm node's availability through a manager
// (the part of swarm.Operator a roll uses; *enroll.Server is one). It
// returns once the manager has done it, refused, or ctx ended.
type Operator interface {
	SetAvailability(ctx context.Context, nodeID, availability string) error
}

var _ Operator = swarm.Operator(nil)

// Heartbeats are what the nodes and the managers tell the appliance
// (*enroll.Server): a node's latest report (by store node name) and the
// swarm with the manager's node list.
type Heartbeats interface {
	LastReport(name string) (rep api.Report, at time.Time, ok bool)
	CurrentSwarm(ctx context.Context) (swarm.Info, error)
}

// Machines are the VMs as the hypervisor knows them.
type Machines interface {
	// SetImage records the VM's new image outside the store (vCenter's
	// swarmboot.image marker); nothing to do is fine.
	SetImage(ctx context.Context, vm, image string) error
	// Reset restarts the VM at once (a hard reset; powered on when off).
	Reset(ctx context.Context, vm string) error
}

// ISOs put a build in front of an iso-boot VM: its ISO pushed to the
// datastore and the VM's CD-ROM pointed at it.
type ISOs interface {
	// InsertISO makes VM vm boot build image's ISO (NAME.iso in the
	// artifacts directory) at its next reset, and returns the image as
	// the VM now records it (the ISO's datastore path).
	InsertISO(ctx context.Context, vm, image string) (recorded string, err error)
}

// Target is one group to roll onto Image, a build name in the artifacts
// directory (NAME-kernel, NAME-initrd.img, NAME.version).
type Target struct {
	Group string
	Image string
}

// Request is one roll.
type Request struct {
	Targets []Target
	// Timeout bounds each node's roll (0 → DefaultTimeout).
	Timeout time.Duration
	// DrainWait bounds the wait, once a node is listed drained, for its
	// swarm tasks to stop and leave it before the reset (0 →
	// DefaultDrainWait); it counts against Timeout too.
	DrainWait time.Duration
	// AllowQuorumLoss rolls a manager even when the other managers
	// cannot keep the raft quorum while it reboots (a single-manager
	// swarm): the swarm then has no control plane until it is back.
	AllowQuorumLoss bool
}

// Progress is one step of a roll, as it happens.
type Progress struct {
	Time time.Time
	VM   string // "" for the roll as a whole
	// Step is the node's step (drain, image, reset, boot, activate,
	// done, skipped, failed; wait: still waiting, with what was seen
	// last) or, for the roll, start, done or stopped.
	Step    string
	Message string
}

func (p Progress) String() string {
	if p.VM == "" {
		return fmt.Sprintf("rotate %s: %s", p.Step, p.Message)
	}
	return fmt.Sprintf("%s %s: %s", p.VM, p.Step, p.Message)
}

// Roller rolls VMs of the store onto new images. Zero values of the
// optional fields are sensible.
type Roller struct {
	Store    *store.Store
	Swarm    Operator
	Nodes    Heartbeats
	Machines Machines
	// ISO rolls iso-boot groups (nil → they are refused, with what to do
	// by hand).
	ISO ISOs
	// Artifacts is the directory the booter serves images from.
	Artifacts string
	// Version reads the version of build name in dir (nil →
	// build.ReadVersion: dir/name.version).
	Version func(dir, name string) (string, error)
	// Boot is the boot mode (iso | pxe) the site gives a group, "" when
	// unknown (nil → unknown: a VM whose image is not a build name is
	// taken as iso).
	Boot func(group string) string
	Log  *slog.Logger     // nil → discard
	Now  func() time.Time // nil → time.Now
	// Poll is how often heartbeats and the node list are looked at (0 →
	// DefaultPoll).
	Poll time.Duration
	// Grace is how long after a reset a report with another image
	// version is still taken for the old system's last word (0 →
	// DefaultGrace).
	Grace time.Duration
	// WaitNote is how often a long wait emits a "wait" progress line
	// saying what it waits for and what it saw last (0 →
	// DefaultWaitNote).
	WaitNote time.Duration
}

func (r *Roller) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *Roller) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Roller) poll() time.Duration {
	if r.Poll > 0 {
		return r.Poll
	}
	return DefaultPoll
}

func (r *Roller) grace() time.Duration {
	if r.Grace > 0 {
		return r.Grace
	}
	return DefaultGrace
}

func (r *Roller) version(name string) (string, error) {
	if r.Version != nil {
		return r.Version(r.Artifacts, name)
	}
	return build.ReadVersion(r.Artifacts, name)
}

// Interrupted marks a roll the store says is running as interrupted: the
// appliance calls it when it starts, since no roll survives its process.
// It returns the roll it marked (nil when none was running).
func Interrupted(st *store.Store, now time.Time) (*store.Rotation, error) {
	var marked *store.Rotation
	err := st.Update(func(tx *store.Tx) error {
		rot, err := tx.Rotation()
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil || rot.State != store.RotationRunning {
			return err
		}
		rot.State, rot.Ended = store.RotationInterrupted, now.UTC()
		at := ""
		for _, n := range rot.Nodes {
			if n.Step != stepPending && n.Step != stepSkipped && n.Step != stepDone {
				at = fmt.Sprintf(" at %s (step %s)", n.VM, n.Step)
			}
		}
		rot.Message = "the appliance stopped during the roll" + at + ": run the same swarmboot rotate again to resume (nodes already on the new image are skipped)"
		marked = rot
		return tx.PutRotation(*rot)
	})
	return marked, err
}
