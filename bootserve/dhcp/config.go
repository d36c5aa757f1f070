package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// Mode selects how much DHCP the server does.
type Mode string

// The modes.
const (
	ModeOff   Mode = "off"   // no DHCP: the site's server points at us
	ModeProxy Mode = "proxy" // PXE clients only, no addresses (default)
	ModeFull  Mode = "full"  // own address pool and leases
)

// ParseMode checks a mode name given by a user.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOff, ModeProxy, ModeFull:
		return m, nil
	case "":
		return ModeProxy, nil
	}
	return "", fmt.Errorf("dhcp mode %q: want proxy, full or off", s)
}

// ErrConfig prefixes configuration errors.
var ErrConfig = errors.New("dhcp config")

// Config is what a Handler needs. Zero values mean the documented defaults.
type Config struct {
	Mode     Mode   // "" → proxy
	ServerIP net.IP // our IPv4 address on the boot network: server identifier, next-server
	Boot     Boot   // what boots where
	Pool     *Pool  // full mode only

	// LeaseFile persists full-mode leases ("" → in memory only). Writes
	// are appended and fsync'd before the ACK goes out; a torn last line
	// after a crash is skipped.
	LeaseFile string

	Recorder   timeline.Recorder     // machine timeline (nil → none)
	Registerer prometheus.Registerer // metrics (nil → none)
	Logger     *slog.Logger          // nil → discard
	Now        func() time.Time      // nil → time.Now (tests)
}

// Pool is the address pool of full mode.
type Pool struct {
	Start, End net.IP     // first and last address handed out (inclusive)
	Netmask    net.IPMask // subnet of the pool; relayed requests must come from it
	Router     net.IP     // option 3 (nil → none)
	DNS        []net.IP   // option 6
	Domain     string     // option 15 ("" → none)
	LeaseTime  time.Duration

	// Reservations maps a MAC (any form net.ParseMAC accepts) to the
	// address that machine always gets. It may lie outside Start..End but
	// must be inside the subnet.
	Reservations map[string]net.IP
}

// DefaultLeaseTime is the full-mode lease time when Pool.LeaseTime is 0.
const DefaultLeaseTime = time.Hour

func ipv4(ip net.IP) (uint32, bool) {
	v4 := ip.To4()
	if v4 == nil {
		return 0, false
	}
	return uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3]), true
}

func fromU32(u uint32) net.IP {
	return net.IPv4(byte(u>>24), byte(u>>16), byte(u>>8), byte(u)).To4()
}

// check validates c and fills defaults in a copy.
func (c Config) check() (Config, error) {
	var err error
	if c.Mode, err = ParseMode(string(c.Mode)); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Mode == ModeOff {
		return c, nil
	}
	if c.ServerIP.To4() == nil {
		return c, fmt.Errorf("%w: server IP %q is not IPv4: set the address of the boot interface", ErrConfig, c.ServerIP)
	}
	c.ServerIP = c.ServerIP.To4()
	if c.Boot, err = c.Boot.check(c.ServerIP); err != nil {
		return c, err
	}
	if c.Mode == ModeFull {
		if c.Pool == nil {
			return c, fmt.Errorf("%w: full mode needs a pool (range, netmask): or use proxy mode", ErrConfig)
		}
		p := *c.Pool
		if err := p.check(); err != nil {
			return c, err
		}
		c.Pool = &p
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Recorder == nil {
		c.Recorder = timeline.Discard
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func (p *Pool) check() error {
	s, ok1 := ipv4(p.Start)
	e, ok2 := ipv4(p.End)
	if !ok1 || !ok2 || s > e {
		return fmt.Errorf("%w: pool range %s-%s: want two IPv4 addresses, first <= last", ErrConfig, p.Start, p.End)
	}
	if len(p.Netmask) == 0 {
		return fmt.Errorf("%w: pool netmask missing (e.g. 255.255.255.0)", ErrConfig)
	}
	if ones, bits := p.Netmask.Size(); bits == 0 || ones == 0 {
		return fmt.Errorf("%w: pool netmask %s is not a valid IPv4 mask", ErrConfig, net.IP(p.Netmask))
	}
	if len(p.Netmask) == net.IPv6len {
		p.Netmask = p.Netmask[12:]
	}
	m, _ := ipv4(net.IP(p.Netmask))
	if s&m != e&m {
		return fmt.Errorf("%w: pool range %s-%s crosses the subnet %s", ErrConfig, p.Start, p.End, net.IP(p.Netmask))
	}
	if p.LeaseTime <= 0 {
		p.LeaseTime = DefaultLeaseTime
	}
	if p.LeaseTime < 10*time.Second {
		return fmt.Errorf("%w: lease time %s is too short (minimum 10s)", ErrConfig, p.LeaseTime)
	}
	res := make(map[string]net.IP, len(p.Reservations))
	for k, ip := range p.Reservations {
		mac, err := net.ParseMAC(k)
		if err != nil {
			return fmt.Errorf("%w: reservation %q: %w", ErrConfig, k, err)
		}
		u, ok := ipv4(ip)
		if !ok || u&m != s&m {
			return fmt.Errorf("%w: reservation %s → %s is not inside the pool subnet", ErrConfig, mac, ip)
		}
		res[mac.String()] = fromU32(u)
	}
	p.Reservations = res
	return nil
}
