package dhcp

import (
	"context"
	"log/slog"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// full answers every client from the address pool, adding a boot file for
// PXE clients.
func (h *Handler) full(ctx context.Context, p *packet) *dhcpv4.DHCPv4 {
	log, req, c := p.log, p.req, p.c
	if relayed(req) {
		if u, ok := ipv4(req.GatewayIPAddr); !ok || !h.leases.inSubnet(u) {
			log.LogAttrs(ctx, slog.LevelDebug, "relayed request from another subnet", slog.String("giaddr", req.GatewayIPAddr.String()))
			return nil
		}
	}
	mac := c.MAC.String()
	now := h.cfg.Now()
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		p.record(timeline.DHCPDiscover, c, nil, "")
		ip, err := h.leases.offer(mac, req.RequestedIPAddress(), now)
		if err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "no address to offer", slog.String("err", err.Error()))
			return nil
		}
		resp := h.newReply(req, dhcpv4.MessageTypeOffer)
		h.addressOptions(resp, ip)
		file := h.maybeBoot(resp, req, c)
		log.LogAttrs(ctx, slog.LevelInfo, "offer", slog.String("ip", ip.String()), slog.String("arch", c.ArchName), slog.String("file", file))
		p.record(timeline.DHCPOffer, c, ip, file)
		return resp

	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(h.cfg.ServerIP) {
			return nil // the client took another server's offer
		}
		ip := req.RequestedIPAddress()
		if ip == nil || ip.IsUnspecified() {
			ip = req.ClientIPAddr
		}
		p.record(timeline.DHCPRequest, c, ip, "")
		nak, err := h.leases.bind(mac, ip, now)
		if err != nil {
			log.LogAttrs(ctx, slog.LevelError, "lease not saved; not acknowledging", slog.String("ip", ip.String()), slog.String("err", err.Error()))
			return nil
		}
		if nak != "" {
			resp := h.newReply(req, dhcpv4.MessageTypeNak)
			resp.UpdateOption(dhcpv4.OptMessage(nak))
			if relayed(req) {
				resp.SetBroadcast() // the relay broadcasts it on the client's segment (RFC 2131 4.3.2)
			}
			log.LogAttrs(ctx, slog.LevelInfo, "nak", slog.String("why", nak))
			p.record(timeline.DHCPNak, c, ip, nak)
			return resp
		}
		resp := h.newReply(req, dhcpv4.MessageTypeAck)
		resp.ClientIPAddr = req.ClientIPAddr
		h.addressOptions(resp, ip)
		file := h.maybeBoot(resp, req, c)
		log.LogAttrs(ctx, slog.LevelInfo, "ack", slog.String("ip", ip.String()), slog.String("arch", c.ArchName), slog.String("file", file))
		p.record(timeline.DHCPAck, c, ip, file)
		return resp

	case dhcpv4.MessageTypeDecline:
		ip := req.RequestedIPAddress()
		if err := h.leases.decline(mac, ip, now); err != nil {
			log.LogAttrs(ctx, slog.LevelError, "decline not saved", slog.String("err", err.Error()))
		}
		log.LogAttrs(ctx, slog.LevelWarn, "client declined address (in use by someone else?)", slog.Any("ip", ip))
		p.record(timeline.DHCPDecline, c, ip, "")
		return nil

	case dhcpv4.MessageTypeRelease:
		if err := h.leases.release(mac, req.ClientIPAddr); err != nil {
			log.LogAttrs(ctx, slog.LevelError, "release not saved", slog.String("err", err.Error()))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "release", slog.String("ip", req.ClientIPAddr.String()))
		p.record(timeline.DHCPRelease, c, req.ClientIPAddr, "")
		return nil

	case dhcpv4.MessageTypeInform:
		resp := h.newReply(req, dhcpv4.MessageTypeAck)
		resp.ClientIPAddr = req.ClientIPAddr
		h.networkOptions(resp)
		h.maybeBoot(resp, req, c)
		return resp
	}
	return nil
}

func relayed(req *dhcpv4.DHCPv4) bool {
	return req.GatewayIPAddr != nil && !req.GatewayIPAddr.IsUnspecified()
}

func (h *Handler) addressOptions(resp *dhcpv4.DHCPv4, ip net.IP) {
	lt := h.cfg.Pool.LeaseTime
	resp.YourIPAddr = ip.To4()
	resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lt))
	resp.UpdateOption(dhcpv4.OptRenewTimeValue(lt / 2))
	resp.UpdateOption(dhcpv4.OptRebindingTimeValue(lt * 7 / 8))
	h.networkOptions(resp)
}

func (h *Handler) networkOptions(resp *dhcpv4.DHCPv4) {
	p := h.cfg.Pool
	resp.UpdateOption(dhcpv4.OptSubnetMask(p.Netmask))
	if p.Router != nil {
		resp.UpdateOption(dhcpv4.OptRouter(p.Router))
	}
	if len(p.DNS) > 0 {
		resp.UpdateOption(dhcpv4.OptDNS(p.DNS...))
	}
	if p.Domain != "" {
		resp.UpdateOption(dhcpv4.OptDomainName(p.Domain))
	}
}

// maybeBoot adds the boot file for PXE clients and returns it ("" → none).
func (h *Handler) maybeBoot(resp, req *dhcpv4.DHCPv4, c Client) string {
	ch := h.cfg.Boot.Choose(c)
	if ch.File == "" {
		return ""
	}
	h.bootOptions(resp, req, c, ch)
	return ch.File
}

// Lease returns the address mac holds in full mode.
func (h *Handler) Lease(mac net.HardwareAddr) (net.IP, bool) {
	if h.leases == nil {
		return nil, false
	}
	ip, _, ok := h.leases.lookup(mac.String(), h.cfg.Now())
	return ip, ok
}
