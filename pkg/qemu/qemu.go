// Package qemu runs QEMU virtual machines for tests and the lab: TCG only
// (never KVM), serial console captured (SeaBIOS and iPXE included, through
// the sercon fw_cfg file), SeaBIOS or OVMF firmware with a per-VM copy of
// the UEFI variables, an optional NIC on a tap inside a network namespace,
// a QMP socket for resets, and a machine-wide limit on running VMs (a
// flock'd slot file) so parallel test processes do not overload the host.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Config describes one VM.
type Config struct {
	Firmware string // "bios" (SeaBIOS, default) or "uefi" (OVMF, VARS copied per VM)

	// Direct kernel boot when Kernel != "". "console=ttyS0" is added to
	// Append unless it names a console itself.
	Kernel, Initrd, Append string

	ISO   string   // CD-ROM image
	Disks []string // raw or qcow2 disk images (virtio)

	// NIC on tap Tap inside network namespace NetNS (QEMU runs inside it);
	// empty Tap → no NIC. MAC empty → QEMU picks one.
	NetNS, Tap, MAC string
	// NativePXE leaves the NIC's iPXE option ROM out, so the firmware's own
	// PXE client boots from the network: under OVMF that is UEFI PXE, which
	// fetches its loader over TFTP, as a vSphere EFI VM does.
	NativePXE bool

	Boot      string // QEMU -boot order, e.g. "n", "d", "c"
	MemoryMiB int    // default 512
	LogFile   string // serial output copy (the serial console incl. SeaBIOS/iPXE via sercon)

	// NoSlot skips the machine-wide VM slot: for callers that hold one with
	// AcquireSlot and run several VMs on purpose.
	NoSlot bool
	// Extra QEMU arguments, appended last.
	Extra []string
}

// Firmware files (Debian's ovmf package).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Binary is the QEMU system emulator.
var Binary = "qemu-system-x86_64"

// ErrMissing wraps every "tool or firmware not installed" error of Check.
var ErrMissing = errors.New("qemu: not installed")

// Check reports whether QEMU and the firmware are present; the error says
// what to install.
func Check() error {
	if _, err := exec.LookPath(Binary); err != nil {
		return fmt.Errorf("%w: %s (apt-get install qemu-system-x86, or run `make deps`)", ErrMissing, Binary)
	}
	for _, f := range []string{OVMFCode, OVMFVars} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %s (apt-get install ovmf, or run `make deps`)", ErrMissing, f)
		}
	}
	return nil
}

// VM is a running QEMU process.
type VM struct {
	cmd     *exec.Cmd
	dir     string // per-VM temporary files (sercon, VARS, QMP socket)
	con     *console
	stderr  bytes.Buffer
	errMu   sync.Mutex
	exited  chan struct{}
	waitErr error
	release func()
	log     *os.File
	once    sync.Once
	relOnce sync.Once
	copied  chan struct{}
}

// sercon is the fw_cfg etc/sercon-port value (I/O port 0x3f8, COM1) that
// makes SeaBIOS mirror its text console, and iPXE's, to the serial port.
var sercon = []byte{0xf8, 0x03, 0, 0, 0, 0, 0, 0}

// Start boots a VM. It waits for a free machine-wide slot first (unless
// cfg.NoSlot). Cancelling ctx stops the VM.
func Start(ctx context.Context, cfg Config) (_ *VM, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	vm := &VM{con: newConsole(), exited: make(chan struct{}), copied: make(chan struct{}), release: func() {}}
	if !cfg.NoSlot {
		rel, err := AcquireSlot(ctx)
		if err != nil {
			return nil, err
		}
		vm.release = rel
	}
	defer func() {
		if err != nil {
			vm.cleanup()
		}
	}()
	if vm.dir, err = os.MkdirTemp("", "swarmboot-vm-"); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	args, err := vm.args(cfg)
	if err != nil {
		return nil, err
	}
	name := Binary
	if cfg.NetNS != "" {
		if strings.ContainsAny(cfg.NetNS, "/\x00") || cfg.NetNS == ".." {
			return nil, fmt.Errorf("qemu: bad network namespace name %q", cfg.NetNS)
		}
		args = append([]string{"--net=/run/netns/" + cfg.NetNS, Binary}, args...)
		name = "nsenter"
	}
	vm.cmd = exec.Command(name, args...)
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	vm.cmd.Stderr = &lockedWriter{mu: &vm.errMu, w: &vm.stderr}
	out, err := vm.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if cfg.LogFile != "" {
		if vm.log, err = os.Create(cfg.LogFile); err != nil {
			return nil, fmt.Errorf("qemu: serial log: %w", err)
		}
	}
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: start %s: %w", name, err)
	}
	go func() {
		var w io.Writer
		if vm.log != nil {
			w = vm.log
		}
		vm.con.copy(out, w)
		close(vm.copied)
	}()
	go func() {
		<-vm.copied // Wait closes the pipe: read it all first
		vm.waitErr = vm.cmd.Wait()
		close(vm.exited)
		vm.relOnce.Do(vm.release) // a VM that powered off frees its slot
	}()
	go func() {
		select {
		case <-ctx.Done():
			vm.Stop()
		case <-vm.exited:
		}
	}()
	return vm, nil
}

func (vm *VM) args(cfg Config) ([]string, error) {
	mem := cfg.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	qmpSock := filepath.Join(vm.dir, "qmp.sock")
	a := []string{
		"-accel", "tcg", "-m", strconv.Itoa(mem),
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
	}
	switch cfg.Firmware {
	case "", "bios":
		f := filepath.Join(vm.dir, "sercon")
		if err := os.WriteFile(f, sercon, 0o644); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
		a = append(a, "-machine", "pc", "-fw_cfg", "name=etc/sercon-port,file="+f)
	case "uefi":
		vars := filepath.Join(vm.dir, "OVMF_VARS.fd")
		b, err := os.ReadFile(OVMFVars)
		if err == nil {
			err = os.WriteFile(vars, b, 0o644)
		}
		if err != nil {
			return nil, fmt.Errorf("qemu: copy UEFI variables: %w", err)
		}
		a = append(a, "-machine", "q35",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	default:
		return nil, fmt.Errorf("qemu: firmware %q: want \"bios\" or \"uefi\"", cfg.Firmware)
	}
	if cfg.Kernel != "" {
		app := cfg.Append
		if !strings.Contains(app, "console=") {
			app = strings.TrimSpace(app + " console=ttyS0")
		}
		a = append(a, "-kernel", cfg.Kernel, "-append", app)
		if cfg.Initrd != "" {
			a = append(a, "-initrd", cfg.Initrd)
		}
	} else if cfg.Initrd != "" || cfg.Append != "" {
		return nil, errors.New("qemu: Initrd and Append need Kernel")
	}
	if cfg.ISO != "" {
		a = append(a, "-drive", "media=cdrom,readonly=on,format=raw,file="+cfg.ISO)
	}
	for _, d := range cfg.Disks {
		f, err := diskFormat(d)
		if err != nil {
			return nil, err
		}
		a = append(a, "-drive", "if=virtio,format="+f+",file="+d)
	}
	if cfg.Tap != "" {
		dev := "virtio-net-pci,netdev=n0"
		if cfg.MAC != "" {
			dev += ",mac=" + cfg.MAC
		}
		if cfg.NativePXE {
			dev += ",romfile="
		}
		a = append(a, "-netdev", "tap,id=n0,ifname="+cfg.Tap+",script=no,downscript=no", "-device", dev)
	} else {
		a = append(a, "-nic", "none")
	}
	if cfg.Boot != "" {
		a = append(a, "-boot", cfg.Boot)
	}
	for _, s := range append([]string{cfg.Kernel, cfg.Initrd, cfg.ISO, cfg.Tap, cfg.MAC}, cfg.Disks...) {
		if strings.Contains(s, ",") {
			return nil, fmt.Errorf("qemu: %q: commas are not allowed in QEMU paths and names", s)
		}
	}
	return append(a, cfg.Extra...), nil
}

// diskFormat tells qcow2 from raw by the magic.
func diskFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("qemu: disk: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if n, _ := io.ReadFull(f, magic); n == 4 && string(magic) == "QFI\xfb" {
		return "qcow2", nil
	}
	return "raw", nil
}

// WaitFor returns the first serial console line matching re, waiting for
// it until ctx ends or the VM exits.
func (vm *VM) WaitFor(ctx context.Context, re *regexp.Regexp) (string, error) {
	return vm.con.waitFor(ctx, re, vm.exitErr)
}

func (vm *VM) exitErr() error {
	<-vm.exited
	vm.errMu.Lock()
	defer vm.errMu.Unlock()
	msg := strings.TrimSpace(vm.stderr.String())
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	if vm.waitErr == nil {
		return fmt.Errorf("qemu exited cleanly; stderr: %q", msg)
	}
	return fmt.Errorf("%v; stderr: %q", vm.waitErr, msg)
}

// Output is the serial console output so far.
func (vm *VM) Output() string { return vm.con.String() }

// Stderr is what QEMU itself printed so far (warnings, errors).
func (vm *VM) Stderr() string {
	vm.errMu.Lock()
	defer vm.errMu.Unlock()
	return vm.stderr.String()
}

// Done is closed when the QEMU process has exited.
func (vm *VM) Done() <-chan struct{} { return vm.exited }

// Reset hard-resets the VM (QMP system_reset), like pressing reset.
func (vm *VM) Reset() error {
	select {
	case <-vm.exited:
		return errors.New("qemu: reset: the VM is not running")
	default:
	}
	return qmp(filepath.Join(vm.dir, "qmp.sock"), "system_reset")
}

// Stop kills the QEMU process, waits for it and releases its slot and
// temporary files. It is safe to call more than once.
func (vm *VM) Stop() error {
	vm.once.Do(func() {
		if vm.cmd != nil && vm.cmd.Process != nil {
			vm.cmd.Process.Kill()
			<-vm.exited
		}
		vm.cleanup()
	})
	return nil
}

func (vm *VM) cleanup() {
	if vm.log != nil {
		vm.log.Close()
	}
	if vm.dir != "" {
		os.RemoveAll(vm.dir)
	}
	vm.relOnce.Do(vm.release)
}

// PID is the QEMU process id.
func (vm *VM) PID() int {
	if vm.cmd == nil || vm.cmd.Process == nil {
		return 0
	}
	return vm.cmd.Process.Pid
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
