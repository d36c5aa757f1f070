package bootserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/httpboot"
	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
	"github.com/swarmboot/swarmboot/bootserve/tftp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// Config configures a Server. Zero values are the documented defaults.
type Config struct {
	// Interface is the boot network interface (required unless DHCP is
	// off and ServerIP is set).
	Interface string
	// ServerIP is our IPv4 address on the boot network ("" → the first
	// IPv4 address of Interface).
	ServerIP net.IP
	// DHCP is the DHCP mode ("" → proxy).
	DHCP dhcp.Mode
	// Pool is the address pool of full mode.
	Pool *dhcp.Pool
	// LeaseFile persists full-mode leases ("" → StateDir/leases.jsonl).
	LeaseFile string
	// HTTPAddr, TFTPAddr, DHCPAddr, PXEAddr are listen addresses (":8080",
	// ":69", ":67", ":4011" by default).
	HTTPAddr, TFTPAddr, DHCPAddr, PXEAddr string
	// HTTPBase is the URL machines use to reach the HTTP server ("" →
	// http://ServerIP:<HTTP port>).
	HTTPBase string
	// Artifacts is the directory of kernels, initrds and ISOs.
	Artifacts string
	// IPXEDir holds undionly.kpxe, ipxe.efi, snponly.efi ("" → Debian's
	// paths, see DebianIPXEDirs).
	IPXEDir string
	// EFILoader is the loader UEFI x64 clients get ("" → ipxe.efi).
	EFILoader string
	// StateDir holds the staged loaders and the lease file (required).
	StateDir string
	// Booter says what each machine boots (required); Default boots the
	// machines it does not know (nil → "register and retry").
	Booter  Booter
	Default *Boot
	// RetryAfter is how long unknown machines wait before asking again
	// (0 → 30 s).
	RetryAfter time.Duration
	// Overrides gives per-machine DHCP choices (nil → none).
	Overrides dhcp.Overrides
	// RouterAdverts sends minimal IPv6 router advertisements on
	// Interface so that iPXE does not wait ~13 s for one (see
	// RouterAdvertiser).
	RouterAdverts bool
	// Do runs fn inside the network namespace the server serves in (nil →
	// the caller's namespace). Listen's sockets are opened by the caller;
	// but TFTP opens one socket per transfer, so its loop runs through Do.
	// Give netns.NS.Do when serving inside a test or lab namespace.
	Do func(fn func() error) error
	// Timeline records the events (nil → a new Log).
	Timeline *timeline.Log
	// Log is the structured logger (nil → discard).
	Log *slog.Logger
}

// Server runs DHCP, TFTP and HTTP for network boots.
type Server struct {
	cfg      Config
	log      *slog.Logger
	tl       *timeline.Log
	reg      *prometheus.Registry
	nb       *neighbors
	dh       *dhcp.Handler
	httpSrv  *httpboot.Server
	tftpSrv  *tftp.Server
	listened bool

	dhcpConn, pxeConn, tftpConn net.PacketConn
	httpLn                      net.Listener
	ra                          *RouterAdvertiser
}

// New checks cfg and prepares the servers; nothing listens yet.
func New(cfg Config) (*Server, error) {
	if cfg.Booter == nil {
		return nil, errors.New("bootserve: Config.Booter is nil")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("bootserve: Config.StateDir is empty: give a directory for staged loaders and leases")
	}
	if cfg.DHCP == "" {
		cfg.DHCP = dhcp.ModeProxy
	}
	setDefault(&cfg.HTTPAddr, ":8080")
	setDefault(&cfg.TFTPAddr, ":69")
	setDefault(&cfg.DHCPAddr, ":67")
	setDefault(&cfg.PXEAddr, ":"+strconv.Itoa(dhcp.PXEPort))
	s := &Server{cfg: cfg, log: cfg.Log, tl: cfg.Timeline, reg: prometheus.NewRegistry()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.tl == nil {
		s.tl = &timeline.Log{}
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.nb = newNeighbors(s.tl)
	if cfg.ServerIP == nil {
		ip, err := interfaceIPv4(cfg.Interface)
		if err != nil {
			return nil, err
		}
		s.cfg.ServerIP = ip
	}
	if s.cfg.HTTPBase == "" {
		_, port, err := net.SplitHostPort(cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("bootserve: --http-addr %q: %w", cfg.HTTPAddr, err)
		}
		s.cfg.HTTPBase = "http://" + net.JoinHostPort(s.cfg.ServerIP.String(), port)
	}
	loaders := filepath.Join(cfg.StateDir, "ipxe")
	staged, err := StageLoaders(cfg.IPXEDir, loaders)
	if err != nil {
		return nil, err
	}
	s.log.Info("iPXE loaders staged", "dir", loaders, "files", staged)
	s.tftpSrv = &tftp.Server{Root: loaders, Log: s.log.With("proto", "tftp"), Recorder: s.nb, Resolve: s.nb.MAC, Metrics: s.reg}
	s.httpSrv = &httpboot.Server{Booter: cfg.Booter, Default: cfg.Default, RetryAfter: cfg.RetryAfter, Artifacts: cfg.Artifacts, Loaders: loaders,
		BaseURL: s.cfg.HTTPBase, Timeline: s.tl, Resolve: s.nb.MAC, Registry: s.reg, Log: s.log.With("proto", "http")}
	if _, err := s.httpSrv.Handler(); err != nil {
		return nil, err
	}
	if cfg.DHCP != dhcp.ModeOff {
		lf := cfg.LeaseFile
		if lf == "" && cfg.DHCP == dhcp.ModeFull {
			lf = filepath.Join(cfg.StateDir, "leases.jsonl")
		}
		s.dh, err = dhcp.NewHandler(dhcp.Config{Mode: cfg.DHCP, ServerIP: s.cfg.ServerIP, Pool: cfg.Pool, LeaseFile: lf,
			Boot:     dhcp.Boot{HTTPBase: s.cfg.HTTPBase, EFIFile: cfg.EFILoader, Overrides: cfg.Overrides},
			Recorder: s.nb, Registerer: s.reg, Logger: s.log.With("proto", "dhcp")})
		if err != nil {
			return nil, fmt.Errorf("bootserve: %w", err)
		}
	}
	return s, nil
}

func setDefault(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// Timeline is the machines' timeline.
func (s *Server) Timeline() *timeline.Log { return s.tl }

// Registry holds every metric the server exports at /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// HTTPBase is the URL machines use to reach the HTTP server.
func (s *Server) HTTPBase() string { return s.cfg.HTTPBase }

// ServerIP is the server's address on the boot network.
func (s *Server) ServerIP() net.IP { return s.cfg.ServerIP }

// Listen opens every socket. Call it from inside a network namespace
// (e.g. netns.NS.Do) to serve there; Run calls it when it was not called.
func (s *Server) Listen() (err error) {
	if s.listened {
		return nil
	}
	defer func() {
		if err != nil {
			s.closeSockets()
		}
	}()
	if s.httpLn, err = net.Listen("tcp4", s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("bootserve: HTTP listen %s: %w (choose another --http-addr)", s.cfg.HTTPAddr, err)
	}
	if s.tftpConn, err = net.ListenPacket("udp4", s.cfg.TFTPAddr); err != nil {
		return fmt.Errorf("bootserve: TFTP listen %s: %w (port 69 needs root; or choose another --tftp-addr)", s.cfg.TFTPAddr, err)
	}
	growBuffer(s.tftpConn)
	if s.dh != nil {
		if s.dhcpConn, err = listenDHCP(s.cfg.Interface, s.cfg.DHCPAddr); err != nil {
			return err
		}
		if s.pxeConn, err = listenDHCP(s.cfg.Interface, s.cfg.PXEAddr); err != nil {
			return err
		}
	}
	if s.cfg.RouterAdverts {
		s.ra = &RouterAdvertiser{Interface: s.cfg.Interface, Log: s.log.With("proto", "ra")}
		if err = s.ra.Listen(); err != nil {
			return err
		}
	}
	s.listened = true
	return nil
}

func listenDHCP(iface, addr string) (net.PacketConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("bootserve: DHCP address %q: %w", addr, err)
	}
	c, err := server4.NewIPv4UDPConn(iface, ua)
	if err != nil {
		return nil, fmt.Errorf("bootserve: DHCP listen %s on %q: %w (needs root and an existing --interface)", addr, iface, err)
	}
	growBuffer(c)
	return c, nil
}

// growBuffer gives a request socket room for a boot storm as soon as it
// exists: requests may arrive before Run starts reading (the DHCP and TFTP
// servers grow the buffer again, and warn when they cannot, when they
// start).
func growBuffer(c net.PacketConn) {
	if sc, ok := c.(syscall.Conn); ok {
		_, _ = sockbuf.Grow(sc, sockbuf.Default)
	}
}

func (s *Server) closeSockets() {
	for _, c := range []interface{ Close() error }{s.httpLn, s.tftpConn, s.dhcpConn, s.pxeConn} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// Run serves until ctx is done or one server fails; it returns nil on a
// clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	defer s.httpSrv.Close()
	if s.dh != nil {
		defer s.dh.Close()
	}
	s.log.Info("bootserve running", "interface", s.cfg.Interface, "server_ip", s.cfg.ServerIP.String(),
		"dhcp", string(s.cfg.DHCP), "http", s.cfg.HTTPBase, "tftp", s.tftpConn.LocalAddr().String())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.httpSrv.Serve(ctx, s.httpLn) })
	g.Go(func() error {
		serve := func() error { return s.tftpSrv.Serve(ctx, s.tftpConn) }
		if s.cfg.Do != nil {
			return s.cfg.Do(serve)
		}
		return serve()
	})
	if s.dh != nil {
		ds := &dhcp.Server{Handler: s.dh, Interface: s.cfg.Interface}
		g.Go(func() error { return ds.Serve(ctx, s.dhcpConn) })
		g.Go(func() error { return ds.ServePXE(ctx, s.pxeConn) })
	}
	if s.ra != nil {
		g.Go(func() error { return s.ra.Serve(ctx) })
	}
	return g.Wait()
}

// HTTPAddr is the HTTP listener's address (after Listen).
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// TFTPAddr is the TFTP socket's address (after Listen).
func (s *Server) TFTPAddr() net.Addr {
	if s.tftpConn == nil {
		return nil
	}
	return s.tftpConn.LocalAddr()
}

func interfaceIPv4(name string) (net.IP, error) {
	if name == "" {
		return nil, errors.New("bootserve: no --interface: name the boot network interface (or set the server IP)")
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("bootserve: interface %q: %w (see `ip link`)", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("bootserve: interface %q addresses: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("bootserve: interface %q has no IPv4 address: give it one (ip addr add 10.77.0.1/24 dev %s)", name, name)
}
