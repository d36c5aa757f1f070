package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/swarmboot/swarmboot/appliance/daemon"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/pkg/netns"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// Options configures Up.
type Options struct {
	// Dir holds the lab: state file, appliance data, artifacts, disks,
	// serial logs (<data-dir>/lab). Required.
	Dir string
	// Images is the image store the lab images are synthesized into.
	Images *store.Store
	// YML is linuxkit/lab.yml.
	YML string
	// Agent is a static swarmboot-agent binary (CGO_ENABLED=0) to bake in.
	Agent string
	// Workers is the number of workers (default 2); there is one manager.
	Workers int
	// UEFI is how many of the workers have EFI firmware (default 1; -1 for
	// none): they boot under OVMF with the firmware's own UEFI PXE client,
	// which fetches ipxe.efi over TFTP, as a vSphere EFI VM does. The
	// others, and the manager, boot SeaBIOS with iPXE in the NIC's ROM.
	UEFI int
	// MaxVMs is how many QEMU VMs run at once (default 3): when a worker
	// must start and MaxVMs run, the earliest worker that has reported is
	// powered off (its disk is kept). Machines boot one after the other,
	// so on 2 cores only one VM is busy booting at a time.
	MaxVMs int
	// Listen is a TCP address in the caller's network namespace where the
	// lab forwards the appliance's HTTP server (machines, events, metrics),
	// so "swarmboot machines" works from the host; "" → no forward. A port
	// already in use fails Up before it makes anything.
	Listen string
	// Subnet is the x in the bridge's 10.77.x.1/24 (default 50).
	Subnet int
	// StageTimeout bounds each machine's wait for its next stage
	// (default 6 min: TCG on 2 busy cores).
	StageTimeout time.Duration
	// Out receives the live progress lines and the summary.
	Out io.Writer
	Log *slog.Logger
}

// Machine is one lab VM.
type Machine struct {
	Name, Role, MAC string
	Firmware        string // the site group's: bios or efi
	BIOSUUID        string // the simulator's; QEMU's SMBIOS gets it (-uuid)
	Disk, Serial    string
	vm              *qemu.VM
	started         time.Time
}

// Lab is a running lab. Close (or Down on its directory) removes it.
type Lab struct {
	opt      Options
	ns       *netns.NS
	d        *daemon.Daemon
	cancel   context.CancelFunc
	done     chan error
	Machines []*Machine
	Initrd   int64  // gzip'd initrd bytes of the first image
	Version  string // the first image's version (build name@digest)
	art      string // the artifacts directory the appliance serves
	site     *site.Site
	// generation is the newest lab image's: 1 for "lab", which Up
	// builds; RotateWorkers builds lab-2, lab-3, ….
	generation int
	power      sync.Mutex // one reset or power-on at a time
	Started    time.Time
	mu         sync.Mutex
	closed     sync.Once
	closeErr   error
	state      State
	release    func()
	// cpuAtBoot is this process's CPU time when the first VM started.
	cpuAtBoot time.Duration
	prog      *progress
	fwdLn     net.Listener
	fwdSrv    *http.Server
}

// Check says what the lab needs and is missing: root, network namespaces,
// /dev/net/tun, QEMU and its firmware.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("lab: run as root (sudo swarmboot lab up): the lab creates a network namespace, a bridge and taps")
	}
	if err := netns.Check(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := qemu.Check(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		return errors.New("lab: Options.Dir is empty")
	}
	if o.Images == nil || o.YML == "" || o.Agent == "" {
		return errors.New("lab: Options.Images, YML and Agent are required")
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.UEFI == 0 {
		o.UEFI = 1
	}
	if o.UEFI > o.Workers {
		return fmt.Errorf("lab: %d UEFI workers but only %d workers", o.UEFI, o.Workers)
	}
	o.UEFI = max(o.UEFI, 0)
	if o.MaxVMs == 0 {
		o.MaxVMs = 3
	}
	if o.Subnet == 0 {
		o.Subnet = 50
	}
	if o.StageTimeout == 0 {
		o.StageTimeout = 6 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Up cleans up a stale lab in opt.Dir, opens the host-side forward
// (opt.Listen), then brings the lab up: a network namespace with a bridge,
// the appliance inside it (full DHCP, simulated vCenter applying a site of
// one manager and opt.Workers workers, opt.UEFI of them with EFI
// firmware), the lab image built with the agent and the appliance's trust
// baked in, and one QEMU VM per simulated VM, netbooting with its
// enrollment token on its kernel line. It returns when every machine has
// reported from the swarm; on error everything it made is removed.
func Up(ctx context.Context, opt Options) (_ *Lab, err error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	if err := Down(opt.Dir); err != nil {
		return nil, fmt.Errorf("lab: cleaning up the previous lab: %w", err)
	}
	// A taken port fails here, before anything is made.
	var fwd net.Listener
	if opt.Listen != "" {
		if fwd, err = listenHost(opt.Listen); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		if fwd != nil {
			fwd.Close()
		}
		return nil, err
	}
	l := &Lab{opt: opt, Started: time.Now(), done: make(chan error, 1), fwdLn: fwd}
	l.state = State{PIDs: []int{os.Getpid()}, Dir: opt.Dir}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	say := func(format string, a ...any) { fmt.Fprintf(opt.Out, format+"\n", a...) }

	if l.ns, err = netns.New(ctx, NSPrefix); err != nil {
		return nil, err
	}
	l.state.NetNS = l.ns.Name()
	if err := writeState(opt.Dir, l.state); err != nil {
		return nil, err
	}
	br := fmt.Sprintf("10.77.%d.1", opt.Subnet)
	if err := l.ns.AddBridge("br0", br+"/24"); err != nil {
		return nil, err
	}
	say("lab: namespace %s, bridge br0 %s/24", l.ns.Name(), br)

	sitePath := filepath.Join(opt.Dir, "site.yml")
	text := siteText(opt.Workers, opt.UEFI)
	if err := os.WriteFile(sitePath, []byte(text), 0o644); err != nil {
		return nil, err
	}
	st, err := site.Parse(sitePath, []byte(text), func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	l.site = st
	art := filepath.Join(opt.Dir, "artifacts")
	l.art = art
	if err := os.MkdirAll(art, 0o755); err != nil {
		return nil, err
	}
	ip := net.ParseIP(br).To4()
	pool := &dhcp.Pool{Start: net.IPv4(ip[0], ip[1], ip[2], 100).To4(), End: net.IPv4(ip[0], ip[1], ip[2], 150).To4(),
		Netmask: net.CIDRMask(24, 32), LeaseTime: time.Hour}
	err = l.ns.Do(func() (err error) {
		l.d, err = daemon.New(daemon.Config{DataDir: filepath.Join(opt.Dir, "appliance"), Artifacts: art, DefaultImage: "lab",
			APIAddr: br + ":8443", MirrorEvery: 200 * time.Millisecond,
			Boot: bootserve.Config{Interface: "br0", ServerIP: ip, DHCP: dhcp.ModeFull, Pool: pool,
				HTTPAddr: br + ":8080", TFTPAddr: br + ":69", RouterAdverts: true, Do: l.ns.Do},
			Site: st, Simulate: true, ResetVM: l.resetVM, Log: opt.Log})
		if err != nil {
			return err
		}
		return l.d.Listen()
	})
	if err != nil {
		return nil, fmt.Errorf("lab: appliance: %w", err)
	}
	say("lab: appliance: boot %s, agent API %s", l.d.HTTPBase(), l.d.APIURL())
	if fwd != nil {
		l.serveForward(fwd, l.d.HTTPBase())
		say("lab: %s forwards to the appliance's HTTP server: swarmboot machines --server %s", fwd.Addr(), l.ForwardURL())
	}

	// The image: lab images from Debian packages, the agent and the
	// appliance's public trust (API URL, CA certificate) baked in.
	t0 := time.Now()
	refs, err := Images(ctx, opt.Images, filepath.Join(opt.Dir, "stage"))
	if err != nil {
		return nil, fmt.Errorf("lab: images: %w (run `make deps`; apt must reach Debian mirrors the first time)", err)
	}
	os.RemoveAll(filepath.Join(opt.Dir, "stage"))
	say("lab: images synthesized in %v (kernel %s)", time.Since(t0).Round(100*time.Millisecond), refs.KernelVersion)
	l.generation = 1
	if _, err := l.buildImage(ctx, "lab", l.generation); err != nil {
		return nil, err
	}

	rctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.done <- l.d.Run(rctx) }()
	select {
	case <-l.d.Applied():
	case err := <-l.done:
		l.done <- err
		return nil, fmt.Errorf("lab: appliance stopped: %v", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := l.d.ApplyErr(); err != nil {
		return nil, fmt.Errorf("lab: applying the lab site: %w", err)
	}
	vms, err := l.d.Unenrolled()
	if err != nil {
		return nil, err
	}
	for _, role := range []string{"manager", "worker"} {
		for _, v := range vms {
			if v.Role != role {
				continue
			}
			if _, err := l.d.IssueToken(v.Name, time.Hour); err != nil {
				return nil, err
			}
			mc := &Machine{Name: v.Name, Role: v.Role, MAC: v.MAC, BIOSUUID: v.BIOSUUID, Firmware: firmwareOf(st, v.Group),
				Disk: filepath.Join(opt.Dir, v.Name+".img"), Serial: filepath.Join(opt.Dir, v.Name+".serial.log")}
			if err := os.WriteFile(mc.Disk, nil, 0o644); err != nil {
				return nil, err
			}
			if err := os.Truncate(mc.Disk, 2<<30); err != nil {
				return nil, err
			}
			if err := l.ns.AddTap("tap-"+v.Name, "br0"); err != nil {
				return nil, err
			}
			l.Machines = append(l.Machines, mc)
		}
	}
	if len(l.Machines) != 1+opt.Workers {
		return nil, fmt.Errorf("lab: the simulator holds %d VMs, want %d", len(l.Machines), 1+opt.Workers)
	}
	if l.release, err = qemu.AcquireSlot(ctx); err != nil {
		return nil, err
	}
	l.prog = newProgress(l, opt.Out)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		l.cpuAtBoot = rusageCPU(&ru)
	}
	for _, mc := range l.Machines {
		l.power.Lock()
		err := l.start(ctx, mc)
		l.power.Unlock()
		if err != nil {
			return nil, err
		}
		if _, err := l.prog.waitSwarm(ctx, mc, mc.started); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// running counts the machines whose VM runs.
func (l *Lab) running() []*Machine {
	var out []*Machine
	for _, mc := range l.Machines {
		if mc.vm != nil {
			select {
			case <-mc.vm.Done():
			default:
				out = append(out, mc)
			}
		}
	}
	return out
}

// start powers mc on (a cold boot from its disk), first powering off the
// earliest-started worker when MaxVMs run already.
func (l *Lab) start(ctx context.Context, mc *Machine) error {
	if run := l.running(); len(run) >= l.opt.MaxVMs {
		for _, o := range run {
			if o.Role == "worker" && o != mc {
				// A power-off pulls the plug: give the guest's ext4
				// (5 s commit) time to write the swarm state first.
				select {
				case <-time.After(10 * time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
				fmt.Fprintf(l.opt.Out, "lab: %s powered off (at most %d VMs run at once; its disk is kept)\n", o.Name, l.opt.MaxVMs)
				o.vm.Stop()
				o.vm = nil
				break
			}
		}
	}
	qc := qemu.Config{NetNS: l.ns.Name(), Tap: "tap-" + mc.Name, MAC: mc.MAC, Boot: "n",
		Disks: []string{mc.Disk}, MemoryMiB: 1536, LogFile: mc.Serial, NoSlot: true, Extra: uuidArg(mc.BIOSUUID)}
	if mc.Firmware == "efi" {
		qc.Firmware, qc.NativePXE = "uefi", true
	}
	vm, err := qemu.Start(ctx, qc)
	if err != nil {
		return fmt.Errorf("lab: %s: %w", mc.Name, err)
	}
	mc.vm, mc.started = vm, time.Now()
	l.mu.Lock()
	l.state.PIDs = append(l.state.PIDs, vm.PID())
	err = writeState(l.opt.Dir, l.state)
	l.mu.Unlock()
	fmt.Fprintf(l.opt.Out, "lab: %s (%s, %s, %s) powered on\n", mc.Name, mc.Role, mc.Firmware, mc.MAC)
	return err
}

// Close stops the VMs and the appliance and removes the namespace and the
// lab's files.
func (l *Lab) Close() error {
	l.closed.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	for _, mc := range l.Machines {
		if mc.vm != nil {
			mc.vm.Stop()
		}
	}
	if l.release != nil {
		l.release()
	}
	l.closeForward()
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	if l.d != nil {
		l.d.Close()
	}
	if l.ns != nil {
		l.ns.Close()
	}
	return os.RemoveAll(l.opt.Dir)
}

// Daemon is the lab's appliance.
func (l *Lab) Daemon() *daemon.Daemon { return l.d }
