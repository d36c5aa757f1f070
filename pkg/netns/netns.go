// Package netns makes Linux network namespaces for tests and the lab: a
// namespace with loopback up, bridges, taps (for QEMU) and veth pairs into
// peer namespaces, commands run inside a namespace through nsenter, and Go
// code run on a thread inside one (so listeners and sockets live there).
// Everything here needs root; Check says what is missing.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where iproute2 keeps named namespaces.
const Dir = "/run/netns"

// ErrUnavailable wraps every error of Check.
var ErrUnavailable = errors.New("netns: network namespaces unavailable")

// Check reports whether namespaces can be made here: root, ip, nsenter and
// /dev/net/tun. The error says what is missing.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root (run as root, e.g. sudo)", ErrUnavailable)
	}
	for tool, pkg := range map[string]string{"ip": "iproute2", "nsenter": "util-linux"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install %s)", ErrUnavailable, tool, pkg)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("%w: /dev/net/tun missing (load the tun module: modprobe tun; in a container, pass --device /dev/net/tun)", ErrUnavailable)
	}
	return nil
}

// NS is a named network namespace.
type NS struct{ name string }

var (
	namePart = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)
	anyName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// New creates a namespace named prefix-<random> with loopback up. Close
// deletes it.
func New(ctx context.Context, prefix string) (*NS, error) {
	if !namePart.MatchString(prefix) {
		return nil, fmt.Errorf("netns: prefix %q: want 1-16 of a-z, 0-9 and -", prefix)
	}
	var b [4]byte
	rand.Read(b[:])
	ns := &NS{name: prefix + "-" + hex.EncodeToString(b[:])}
	if err := run(ctx, "ip", "netns", "add", ns.name); err != nil {
		return nil, err
	}
	if err := ns.ip(ctx, "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// Open returns the existing namespace name (for example a stale one to
// delete).
func Open(name string) (*NS, error) {
	if !anyName.MatchString(name) {
		return nil, fmt.Errorf("netns: bad namespace name %q", name)
	}
	if _, err := os.Stat(Dir + "/" + name); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	return &NS{name: name}, nil
}

// List returns the names of the existing namespaces that start with
// prefix (all of them for "").
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Name is the namespace's name (as in /run/netns/NAME).
func (ns *NS) Name() string { return ns.name }

// Path is /run/netns/NAME.
func (ns *NS) Path() string { return Dir + "/" + ns.name }

// Close deletes the namespace; its interfaces go with it. Processes still
// running inside keep it alive until they exit, so stop them first.
func (ns *NS) Close() error {
	return run(context.Background(), "ip", "netns", "del", ns.name)
}

// AddBridge creates bridge name with address cidr (e.g. "10.77.0.1/24";
// empty for none) and brings it up.
func (ns *NS) AddBridge(name, cidr string) error {
	ctx := context.Background()
	if err := ns.ip(ctx, "link", "add", "name", name, "type", "bridge"); err != nil {
		return err
	}
	if cidr != "" {
		if err := ns.ip(ctx, "addr", "add", cidr, "dev", name); err != nil {
			return err
		}
	}
	return ns.ip(ctx, "link", "set", name, "up")
}

// AddTap creates tap device name, attaches it to bridge (if not empty) and
// brings it up. QEMU running in the namespace opens it by name.
func (ns *NS) AddTap(name, bridge string) error {
	ctx := context.Background()
	if err := ns.ip(ctx, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
		return err
	}
	return ns.up(ctx, name, bridge)
}

// AddVethPeer creates a veth pair: name stays here on bridge (if not
// empty), peerName goes into peer with address peerCIDR (empty for none).
func (ns *NS) AddVethPeer(name, bridge string, peer *NS, peerName, peerCIDR string) error {
	ctx := context.Background()
	if err := ns.ip(ctx, "link", "add", name, "type", "veth", "peer", "name", peerName, "netns", peer.name); err != nil {
		return err
	}
	if err := ns.up(ctx, name, bridge); err != nil {
		return err
	}
	if peerCIDR != "" {
		if err := peer.ip(ctx, "addr", "add", peerCIDR, "dev", peerName); err != nil {
			return err
		}
	}
	return peer.ip(ctx, "link", "set", peerName, "up")
}

func (ns *NS) up(ctx context.Context, dev, bridge string) error {
	if bridge != "" {
		if err := ns.ip(ctx, "link", "set", dev, "master", bridge); err != nil {
			return err
		}
	}
	return ns.ip(ctx, "link", "set", dev, "up")
}

// IP runs `ip -n NAME args...`.
func (ns *NS) IP(ctx context.Context, args ...string) error { return ns.ip(ctx, args...) }

func (ns *NS) ip(ctx context.Context, args ...string) error {
	return run(ctx, "ip", append([]string{"-n", ns.name}, args...)...)
}

// Command returns a command that runs inside the namespace (through
// nsenter --net, which unlike `ip netns exec` leaves /sys alone, so dockerd
// works there).
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns.Path(), name}, args...)...)
}

// Do runs fn on a locked OS thread switched into the namespace, then
// switches the thread back. Sockets fn opens stay in the namespace after
// Do returns. Goroutines fn starts run on other threads, outside it.
func (ns *NS) Do(fn func() error) error {
	target, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns: open %s: %w", ns.Path(), err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open own namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", ns.name, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine rather
		// than serve others from the wrong namespace.
		return fmt.Errorf("netns: leave %s: %w", ns.name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func run(ctx context.Context, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netns: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
