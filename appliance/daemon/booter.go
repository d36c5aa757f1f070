package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve"
)

// TokenArg is the kernel command line key the agent reads its one-time
// enrollment token from (agent.CmdlineToken).
const TokenArg = "swarmboot.token"

// kernelArgs holds per-MAC kernel command line additions in memory only:
// they carry one-time tokens, so they are never stored, logged or put into
// an event. An entry ends at its expiry or when its machine enrolls.
type kernelArgs struct {
	mu sync.Mutex
	m  map[string]argEntry // by lowercase colon MAC
}

type argEntry struct {
	token           string
	issued, expires time.Time
}

func newKernelArgs() *kernelArgs { return &kernelArgs{m: map[string]argEntry{}} }

func (k *kernelArgs) set(mac string, e argEntry) {
	k.mu.Lock()
	k.m[mac] = e
	k.mu.Unlock()
}

// get returns mac's additions ("" when none or expired).
func (k *kernelArgs) get(mac string, now time.Time) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[mac]
	if !ok {
		return ""
	}
	if now.After(e.expires) {
		delete(k.m, mac)
		return ""
	}
	return TokenArg + "=" + e.token
}

// forget drops mac's additions when they were issued before at (the
// machine enrolled at that time, so its token is spent).
func (k *kernelArgs) forget(mac string, at time.Time) {
	k.mu.Lock()
	if e, ok := k.m[mac]; ok && !e.issued.After(at) {
		delete(k.m, mac)
	}
	k.mu.Unlock()
}

// Redact replaces the value of every swarmboot.token= in a kernel command
// line, for anything that shows one.
func Redact(cmdline string) string {
	f := strings.Fields(cmdline)
	for i, a := range f {
		if strings.HasPrefix(a, TokenArg+"=") {
			f[i] = TokenArg + "=<redacted>"
		}
	}
	return strings.Join(f, " ")
}

// IssueToken creates a one-time enrollment token for a machine named by
// its MAC or by the name of a VM the store knows, and puts it on that
// MAC's iPXE kernel line (swarmboot.token=…) until it expires (ttl, 0 →
// Config.TokenTTL) or the machine enrolls. The store keeps only its hash
// (enroll.NewToken), bound to the MAC: a netbooted machine's firmware UUID
// need not be the one vCenter reports. The token is returned for callers
// that hand it over some other way too; it is a secret: never log it.
func (d *Daemon) IssueToken(who string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = d.cfg.TokenTTL
	}
	mac, err := d.MACOf(who)
	if err != nil {
		return "", err
	}
	now := time.Now()
	tok, err := enroll.NewToken(d.st, enroll.TokenFor{MAC: mac}, ttl, now)
	if err != nil {
		return "", fmt.Errorf("issue token for %s: %w", who, err)
	}
	d.args.set(mac, argEntry{token: tok, issued: now, expires: now.Add(ttl)})
	d.log.Info("enrollment token on the kernel line", "mac", mac, "ttl", ttl.String())
	return tok, nil
}

// kernelLineToken is IssueToken for the admin API (admin.Ops.KernelLine):
// it also answers the MAC and the expiry.
func (d *Daemon) kernelLineToken(who string, ttl time.Duration) (string, string, time.Time, error) {
	if ttl <= 0 {
		ttl = d.cfg.TokenTTL
	}
	mac, err := d.MACOf(who)
	if err != nil {
		return "", "", time.Time{}, err
	}
	exp := time.Now().Add(ttl) // IssueToken's own clock reads a moment later
	tok, err := d.IssueToken(mac, ttl)
	return mac, tok, exp, err
}

// MACOf resolves a MAC or the name of a VM in the store to a canonical
// (lowercase, colon) MAC.
func (d *Daemon) MACOf(who string) (string, error) {
	if hw, err := net.ParseMAC(who); err == nil {
		if len(hw) != 6 {
			return "", fmt.Errorf("issue token: %q is not an Ethernet MAC", who)
		}
		return hw.String(), nil
	}
	var mac string
	err := d.st.View(func(tx *store.Tx) error {
		vm, err := tx.VM(who)
		if err != nil {
			return err
		}
		mac = vm.MAC
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("issue token: %q is neither a MAC nor a VM in the store (apply the site first, or give the MAC)", who)
	}
	if err != nil {
		return "", err
	}
	if mac == "" {
		return "", fmt.Errorf("issue token: VM %q has no MAC recorded, so no netboot can carry its token: give its MAC", who)
	}
	return store.NormalizeMAC(mac), nil
}

// booter answers what a machine boots from the store: a VM the store knows
// boots its image from the artifacts directory, with the machine's
// in-memory kernel arguments; so does a machine that only has a token
// (bare metal). Anything else is asked of fallback, else unknown.
type booter struct {
	d        *Daemon
	fallback bootserve.Booter
}

func (b *booter) Boot(ctx context.Context, m bootserve.Machine) (*bootserve.Boot, error) {
	mac := m.MAC.String()
	var vm *store.VM
	err := b.d.st.View(func(tx *store.Tx) error {
		v, err := tx.VMByMAC(mac)
		vm = v
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("machine %s: read the store: %w", mac, err)
	}
	args := b.d.args.get(mac, time.Now())
	if vm == nil && args == "" {
		if b.fallback != nil {
			return b.fallback.Boot(ctx, m)
		}
		return nil, fmt.Errorf("%s: %w (no VM with this MAC in the store)", mac, bootserve.ErrUnknown)
	}
	image := b.d.cfg.DefaultImage
	if vm != nil && site.IsBuildName(vm.Image) {
		image = vm.Image // a build name; an ISO path is for iso boots
	}
	dir := &bootserve.DirBooter{Dir: b.d.cfg.Artifacts, Default: image,
		Machines: map[string]bootserve.MachineEntry{mac: {Image: image}}}
	boot, err := dir.Boot(ctx, m)
	if err != nil {
		if vm != nil {
			return nil, fmt.Errorf("vm %s: %w", vm.Name, err)
		}
		return nil, err
	}
	if vm != nil {
		boot.Name = vm.Name + ": " + boot.Name
	}
	if b.d.trust != "" {
		boot.Initrd = append(boot.Initrd, b.d.trust)
	}
	boot.Args = strings.TrimSpace(boot.Args + " " + args)
	return boot, nil
}

// Unenrolled lists the VMs of the store that have a MAC but no node yet:
// the machines a netboot token is for ("--token all"). A revoked node is
// not listed: it was shut out on purpose, and an automatic token on its
// kernel line would let it back in at its next boot; re-admit it by name
// (--token NAME, swarmboot token create).
func (d *Daemon) Unenrolled() ([]store.VM, error) {
	var out []store.VM
	err := d.st.View(func(tx *store.Tx) error {
		vms, err := tx.VMs()
		if err != nil {
			return err
		}
		for _, vm := range vms {
			if vm.MAC == "" {
				continue
			}
			if _, err := tx.Node(vm.Name); err == nil {
				continue // enrolled, or revoked
			}
			out = append(out, vm)
		}
		return nil
	})
	return out, err
}
