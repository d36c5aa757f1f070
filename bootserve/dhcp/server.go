package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/sync/errgroup"

	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
)

// Server puts a Handler on UDP sockets.
type Server struct {
	Handler *Handler
	// Interface is the boot network interface. ListenAndServe binds its
	// sockets to it (SO_BINDTODEVICE) so that broadcasts go out there.
	Interface string
	Addr      string // DHCP listen address ("" → ":67")
	PXEAddr   string // PXE boot server listen address ("" → ":4011")
	// MaxInFlight bounds concurrently handled packets that wait for the
	// lease file (0 → 256); others are answered in the read loop.
	MaxInFlight int
	// ReadBuffer is the sockets' receive buffer in bytes (0 → 4 MiB, see
	// bootserve/internal/sockbuf; < 0 → the system default). A storm of
	// machines powered on together overflows the default of ~208 KiB.
	ReadBuffer int
	Logger     *slog.Logger // nil → the handler's logger
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return s.Handler.cfg.Logger
}

// ListenAndServe serves DHCP on port 67 and the PXE boot server on 4011 of
// Interface until ctx is cancelled. In off mode it returns nil at once.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.Handler.Mode() == ModeOff {
		s.logger().Info("DHCP is off: the site's DHCP server must point PXE clients at us")
		return nil
	}
	addr, pxeAddr := s.Addr, s.PXEAddr
	if addr == "" {
		addr = ":67"
	}
	if pxeAddr == "" {
		pxeAddr = fmt.Sprintf(":%d", PXEPort)
	}
	conn, err := listen(s.Interface, addr, s.readBuffer())
	if err != nil {
		return err
	}
	pconn, err := listen(s.Interface, pxeAddr, s.readBuffer())
	if err != nil {
		conn.Close()
		return err
	}
	s.logger().Info("DHCP serving", "mode", s.Handler.Mode(), "interface", s.Interface, "addr", addr, "pxe", pxeAddr)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Serve(ctx, conn) })
	g.Go(func() error { return s.ServePXE(ctx, pconn) })
	return g.Wait()
}

func listen(iface, addr string, buf int) (net.PacketConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("dhcp listen address %q: %w", addr, err)
	}
	conn, err := server4.NewIPv4UDPConn(iface, ua)
	if err != nil {
		return nil, fmt.Errorf("dhcp listen on %s (interface %q): %w: run as root (or with CAP_NET_BIND_SERVICE and CAP_NET_RAW) and check the interface exists", addr, iface, err)
	}
	if buf > 0 {
		_, _ = sockbuf.Grow(conn, buf) // at once; serve warns if it stays small
	}
	return conn, nil
}

// Serve answers DHCP requests arriving on conn (port 67 traffic) until ctx
// is cancelled; it closes conn.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	return s.serve(ctx, conn, false)
}

// ServePXE answers PXE boot server requests arriving on conn (port 4011
// traffic) until ctx is cancelled; it closes conn.
func (s *Server) ServePXE(ctx context.Context, conn net.PacketConn) error {
	return s.serve(ctx, conn, true)
}

func (s *Server) serve(ctx context.Context, conn net.PacketConn, pxe bool) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.growBuffer(conn)
	max := s.MaxInFlight
	if max <= 0 {
		max = 256
	}
	sem := make(chan struct{}, max)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		buf := make([]byte, 1500)
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			conn.Close()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dhcp read: %w", err)
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			s.logger().Debug("dropping malformed DHCP packet", "from", peer.String(), "err", err)
			continue
		}
		if !s.Handler.mayBlock(req) {
			s.reply(ctx, conn, req, peer, pxe) // no disk: answer at once
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.reply(ctx, conn, req, peer, pxe)
		}()
	}
}

// readBuffer is the receive buffer to ask for (< 0: leave it).
func (s *Server) readBuffer() int {
	if s.ReadBuffer == 0 {
		return sockbuf.Default
	}
	return s.ReadBuffer
}

// growBuffer makes room in conn's receive buffer for a boot storm.
func (s *Server) growBuffer(conn net.PacketConn) {
	n := s.readBuffer()
	sc, ok := conn.(syscall.Conn)
	if n < 0 || !ok {
		return
	}
	got, err := sockbuf.Grow(sc, n)
	if err != nil || got < n {
		s.logger().Warn("DHCP socket keeps a small receive buffer: machines booting together may have to retransmit; run as root or raise net.core.rmem_max",
			"addr", conn.LocalAddr().String(), "bytes", got, "want", n, "err", err)
	}
}

func (s *Server) reply(ctx context.Context, conn net.PacketConn, req *dhcpv4.DHCPv4, peer net.Addr, pxe bool) {
	resp, p := s.Handler.handle(ctx, req, pxe)
	defer p.flush() // timeline events after the reply is sent
	if resp == nil {
		return
	}
	dst := replyAddr(req, resp, peer)
	if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil && ctx.Err() == nil {
		s.logger().Warn("dhcp send failed", "mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(), "to", dst.String(), "err", err)
	}
}

// replyAddr says where a reply goes (RFC 2131 4.1): to the relay, to the
// client's address, or broadcast when the client has none yet.
func replyAddr(req, resp *dhcpv4.DHCPv4, peer net.Addr) net.Addr {
	up, _ := peer.(*net.UDPAddr)
	known := up != nil && up.IP != nil && !up.IP.IsUnspecified()
	if gw := req.GatewayIPAddr; gw != nil && !gw.IsUnspecified() {
		if known && up.IP.Equal(gw) {
			return up
		}
		return &net.UDPAddr{IP: gw, Port: dhcpv4.ServerPort}
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
	if known {
		return up
	}
	if ci := req.ClientIPAddr; ci != nil && !ci.IsUnspecified() {
		return &net.UDPAddr{IP: ci, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}
