package bootserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// RouterAdvertiser sends minimal IPv6 router advertisements on the boot
// network: no prefix, router lifetime 0 (not a default router), managed
// and other-config flags clear. iPXE configures IPv6 alongside DHCPv4 and,
// when no router advertisement arrives, waits about 13 s before it boots;
// such an advertisement tells it right away that there is nothing to
// configure. Hosts on the link are not affected: it announces no prefix
// and no route.
type RouterAdvertiser struct {
	Interface string
	// Interval between unsolicited advertisements (0 → 1 s). Router
	// solicitations are answered at once.
	Interval time.Duration
	Log      *slog.Logger

	conn *icmp.PacketConn
	ifi  *net.Interface
}

// Listen opens the ICMPv6 socket (root; call inside the network namespace
// to serve there).
func (r *RouterAdvertiser) Listen() error {
	ifi, err := net.InterfaceByName(r.Interface)
	if err != nil {
		return fmt.Errorf("router advertisements: interface %q: %w", r.Interface, err)
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("router advertisements on %s: %w (needs root and IPv6 on the interface; or turn them off)", r.Interface, err)
	}
	p := c.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	err = errors.Join(p.SetICMPFilter(&f), p.SetMulticastHopLimit(255), p.SetHopLimit(255),
		p.SetMulticastInterface(ifi), p.SetControlMessage(ipv6.FlagInterface, true))
	if err != nil {
		c.Close()
		return fmt.Errorf("router advertisements on %s: %w", r.Interface, err)
	}
	r.conn, r.ifi = c, ifi
	return nil
}

// advert is the ICMPv6 router advertisement body with a source link-layer
// address option.
func (r *RouterAdvertiser) advert() ([]byte, error) {
	body := []byte{
		64, 0, // cur hop limit, flags (M=0, O=0)
		0, 0, // router lifetime 0: not a default router
		0, 0, 0, 0, // reachable time: unspecified
		0, 0, 0, 0, // retrans timer: unspecified
	}
	if len(r.ifi.HardwareAddr) == 6 {
		body = append(body, 1, 1) // source link-layer address, 8 bytes
		body = append(body, r.ifi.HardwareAddr...)
	}
	m := icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}
	return m.Marshal(nil) // the kernel fills in the ICMPv6 checksum
}

// Serve advertises until ctx is done. It needs Listen first.
func (r *RouterAdvertiser) Serve(ctx context.Context) error {
	if r.conn == nil {
		if err := r.Listen(); err != nil {
			return err
		}
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := r.Interval
	if every <= 0 {
		every = time.Second
	}
	msg, err := r.advert()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { r.conn.Close() })
	defer stop()
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: r.Interface}
	log.Info("sending IPv6 router advertisements (no prefix, lifetime 0) so iPXE does not wait for one", "interface", r.Interface)
	p := r.conn.IPv6PacketConn()
	buf := make([]byte, 1500)
	var last time.Time
	for {
		if time.Since(last) >= every/4 {
			if _, err := p.WriteTo(msg, nil, dst); err != nil && ctx.Err() == nil {
				// The link-local source address may still be tentative
				// (DAD) right after the interface came up: retry later.
				log.Debug("router advertisement not sent", "err", err)
			}
			last = time.Now()
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(every))
		n, cm, _, err := p.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("router advertisements: %w", err)
		}
		if n > 0 && buf[0] == byte(ipv6.ICMPTypeRouterSolicitation) && (cm == nil || cm.IfIndex == r.ifi.Index) {
			last = time.Time{} // answer the solicitation now
		}
	}
}
