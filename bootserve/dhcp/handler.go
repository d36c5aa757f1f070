package dhcp

import (
	"context"
	"log/slog"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// PXEPort is the port of the PXE boot server (proxy DHCP follow-up).
const PXEPort = 4011

// Handler turns one request into at most one reply. It holds no sockets;
// it is safe for concurrent use.
type Handler struct {
	cfg    Config
	leases *leases // full mode
	m      *metrics
}

// NewHandler checks cfg and, in full mode, loads the lease file.
func NewHandler(cfg Config) (*Handler, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, m: newMetrics(cfg.Registerer, cfg.Logger)}
	if cfg.Mode == ModeFull {
		h.leases, err = newLeases(cfg.Pool, cfg.ServerIP, cfg.LeaseFile, cfg.Now(), cfg.Logger)
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Mode returns the handler's mode.
func (h *Handler) Mode() Mode { return h.cfg.Mode }

// Close releases the lease file.
func (h *Handler) Close() error {
	if h.leases != nil {
		return h.leases.close()
	}
	return nil
}

// mayBlock reports whether handling req may wait for the lease file.
func (h *Handler) mayBlock(req *dhcpv4.DHCPv4) bool {
	if h.leases == nil || h.leases.j == nil {
		return false
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeRelease:
		return true
	}
	return false
}

// Handle answers req, received on port 67 or, when pxePort is set, on the
// PXE port 4011. A nil reply means: stay silent.
func (h *Handler) Handle(ctx context.Context, req *dhcpv4.DHCPv4, pxePort bool) *dhcpv4.DHCPv4 {
	resp, p := h.handle(ctx, req, pxePort)
	p.flush()
	return resp
}

// packet is one request on its way through the handler: its logger and
// the timeline events it produced, recorded by flush (the Server flushes
// after the reply is on the wire, so the recorder does not delay it).
type packet struct {
	h      *Handler
	log    *slog.Logger
	req    *dhcpv4.DHCPv4
	c      Client
	events []timeline.Event
}

func (p *packet) record(kind timeline.Kind, c Client, ip net.IP, detail string) {
	p.events = append(p.events, timeline.Event{
		Time: p.h.cfg.Now(), MAC: c.MAC, IP: ip, Arch: c.ArchName, Kind: kind, Detail: detail,
	})
}

func (p *packet) flush() {
	if p == nil {
		return
	}
	for _, e := range p.events {
		p.h.cfg.Recorder.Record(e)
	}
	p.events = nil
}

func (h *Handler) handle(ctx context.Context, req *dhcpv4.DHCPv4, pxePort bool) (*dhcpv4.DHCPv4, *packet) {
	if h.cfg.Mode == ModeOff || req == nil || req.OpCode != dhcpv4.OpcodeBootRequest ||
		len(req.ClientHWAddr) == 0 {
		return nil, nil
	}
	mt := req.MessageType()
	if mt == dhcpv4.MessageTypeNone {
		return nil, nil // plain BOOTP is not served
	}
	h.m.received(mt)
	c := Classify(req)
	p := &packet{h: h, req: req, c: c,
		log: h.cfg.Logger.With("mac", c.MAC.String(), "xid", req.TransactionID.String())}
	var resp *dhcpv4.DHCPv4
	if pxePort {
		resp = h.pxeServer(ctx, p)
	} else if h.cfg.Mode == ModeProxy {
		resp = h.proxy(ctx, p)
	} else {
		resp = h.full(ctx, p)
	}
	if resp != nil {
		h.m.sent(resp.MessageType(), c.ArchName, h.cfg.Mode)
	}
	return resp, p
}

// proxy answers PXE DISCOVERs on port 67 with a boot offer and no address.
func (h *Handler) proxy(ctx context.Context, p *packet) *dhcpv4.DHCPv4 {
	log, req, c := p.log, p.req, p.c
	if !c.PXE {
		log.LogAttrs(ctx, slog.LevelDebug, "ignoring a client that does not netboot (proxy mode)")
		return nil
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(h.cfg.ServerIP) {
			p.record(timeline.DHCPRequest, c, req.RequestedIPAddress(), "address from DHCP server "+sid.String())
		}
		return nil
	default:
		return nil
	}
	p.record(timeline.DHCPDiscover, c, nil, "proxy")
	ch := h.cfg.Boot.Choose(c)
	if ch.File == "" {
		log.LogAttrs(ctx, slog.LevelInfo, "not offering a boot file", slog.String("arch", c.ArchName), slog.String("why", ch.Why))
		return nil
	}
	resp := h.newReply(req, dhcpv4.MessageTypeOffer)
	h.bootOptions(resp, req, c, ch)
	log.LogAttrs(ctx, slog.LevelInfo, "proxy offer", slog.String("arch", c.ArchName), slog.String("file", ch.File))
	p.record(timeline.DHCPOffer, c, nil, ch.File)
	return resp
}

// pxeServer answers the PXE boot server REQUEST on port 4011 with the boot
// file; the client already has its address from a DHCP server.
func (h *Handler) pxeServer(ctx context.Context, p *packet) *dhcpv4.DHCPv4 {
	log, req, c := p.log, p.req, p.c
	mt := req.MessageType()
	if !c.PXE || (mt != dhcpv4.MessageTypeRequest && mt != dhcpv4.MessageTypeInform) {
		return nil
	}
	p.record(timeline.DHCPRequest, c, req.ClientIPAddr, "PXE boot server (port 4011)")
	ch := h.cfg.Boot.Choose(c)
	if ch.File == "" {
		log.LogAttrs(ctx, slog.LevelInfo, "not answering PXE boot server request", slog.String("arch", c.ArchName), slog.String("why", ch.Why))
		return nil
	}
	resp := h.newReply(req, dhcpv4.MessageTypeAck)
	resp.ClientIPAddr = req.ClientIPAddr
	h.bootOptions(resp, req, c, ch)
	log.LogAttrs(ctx, slog.LevelInfo, "PXE boot server ack", slog.String("arch", c.ArchName), slog.String("file", ch.File))
	p.record(timeline.DHCPAck, c, req.ClientIPAddr, ch.File)
	return resp
}

// newReply starts a reply with the fields every reply copies.
func (h *Handler) newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientHWAddr:  req.ClientHWAddr,
		GatewayIPAddr: req.GatewayIPAddr,
		ClientIPAddr:  net.IPv4zero.To4(),
		YourIPAddr:    net.IPv4zero.To4(),
		ServerIPAddr:  net.IPv4zero.To4(),
		Options:       dhcpv4.Options{},
	}
	resp.UpdateOption(dhcpv4.OptMessageType(mt))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(h.cfg.ServerIP))
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.Options.Get(code); v != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	return resp
}

// pxeDiscoveryControl is PXE option 43 with sub-option 6 (discovery
// control) = 8: boot the file named in this offer, no menu, no boot server
// discovery. PXE ROMs need it to accept a proxy offer, and with option 60
// PXEClient in a full offer it stops them from looking for boot servers.
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// bootOptions adds the boot file and what the firmware needs to use it.
func (h *Handler) bootOptions(resp, req *dhcpv4.DHCPv4, c Client, ch Choice) {
	resp.ServerIPAddr = h.cfg.Boot.TFTPServer
	if len(ch.File) < 128 {
		resp.BootFileName = ch.File
	}
	resp.UpdateOption(dhcpv4.OptBootFileName(ch.File))
	if ch.HTTP {
		resp.UpdateOption(dhcpv4.OptClassIdentifier("HTTPClient"))
	} else {
		resp.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		if !c.IPXE {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
		}
	}
	if v := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); v != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, v))
	}
}
