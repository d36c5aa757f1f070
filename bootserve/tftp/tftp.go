// Package tftp serves boot loaders (iPXE's undionly.kpxe, ipxe.efi, …) over
// TFTP, read-only, from one directory that no requested name can escape.
// It wraps github.com/pin/tftp/v3 and adds name checks, structured logs,
// Prometheus metrics and machine timeline events.
//
// Negotiated options: blksize (RFC 2348, clamped to the interface MTU) and
// tsize (RFC 2349). windowsize (RFC 7440, asked for by OVMF) is not
// acknowledged by pin/tftp v3.2.0, so such clients fall back to lock-step
// transfers as RFC 7440 prescribes.
package tftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/bootserve/internal/safefile"
	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// Server serves the files under Root. The zero value of every other field
// is a sensible default.
type Server struct {
	// Root is the directory files are served from (required).
	Root string
	// Log receives one line per transfer (nil → discard).
	Log *slog.Logger
	// Recorder receives a timeline.TFTP event per transfer (nil → none).
	Recorder timeline.Recorder
	// Resolve maps a client IP to its MAC for the timeline (nil or a nil
	// result → the event has no MAC).
	Resolve func(net.IP) net.HardwareAddr
	// Metrics registers the TFTP metrics (nil → not exported).
	Metrics prometheus.Registerer
	// Timeout is the per-packet retransmission timeout (0 → 2 s).
	Timeout time.Duration
	// Retries per packet before a transfer fails (0 → 5).
	Retries int
	// MaxBlockSize caps the negotiated blksize (0 → 1468, which fits an
	// Ethernet frame; clients asking more get this).
	MaxBlockSize int
	// ReadBuffer is the receive buffer of the request socket in bytes
	// (0 → 4 MiB, see bootserve/internal/sockbuf; < 0 → the system
	// default), so that a burst of read requests is queued, not dropped.
	ReadBuffer int
}

// Serve answers read requests on conn until ctx is done, then waits for
// running transfers to finish or time out. It returns nil on a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	if s.Root == "" {
		return errors.New("tftp: Server.Root is empty: set the directory holding the boot loaders")
	}
	dir, err := safefile.Open(s.Root)
	if err != nil {
		return fmt.Errorf("tftp: %w (check --tftp-root or the iPXE directory)", err)
	}
	defer dir.Close()
	m, err := newMetrics(s.Metrics)
	if err != nil {
		return err
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if sc, ok := conn.(syscall.Conn); ok && s.ReadBuffer >= 0 {
		n := s.ReadBuffer
		if n == 0 {
			n = sockbuf.Default
		}
		if got, err := sockbuf.Grow(sc, n); err != nil || got < n {
			log.Warn("TFTP socket keeps a small receive buffer: machines booting together may have to retry; run as root or raise net.core.rmem_max",
				"addr", conn.LocalAddr().String(), "bytes", got, "want", n, "err", err)
		}
	}
	h := &handler{dir: dir, log: log, rec: s.Recorder, resolve: s.Resolve, m: m}
	srv := tftp.NewServer(h.read, nil)
	srv.SetHook(h)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	srv.SetTimeout(timeout)
	if s.Retries > 0 {
		srv.SetRetries(s.Retries)
	} else {
		srv.SetRetries(5)
	}
	// pin/tftp's MTU probing falls back to 512 bytes when the socket gives
	// no control messages; cap explicitly instead.
	srv.SetBlockSizeNegotiation(false)
	if s.MaxBlockSize > 0 {
		srv.SetBlockSize(s.MaxBlockSize)
	} else {
		srv.SetBlockSize(1468)
	}
	stop := context.AfterFunc(ctx, srv.Shutdown)
	defer stop()
	log.Info("tftp serving", "addr", conn.LocalAddr().String(), "root", s.Root)
	err = srv.Serve(conn)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on the UDP address addr (e.g. ":69") and serves.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return fmt.Errorf("tftp: listen %s: %w (port 69 needs root or CAP_NET_BIND_SERVICE)", addr, err)
	}
	return s.Serve(ctx, conn)
}

type handler struct {
	dir     *safefile.Dir
	log     *slog.Logger
	rec     timeline.Recorder
	resolve func(net.IP) net.HardwareAddr
	m       *metrics
}

// read is the pin/tftp read handler: one call per RRQ.
func (h *handler) read(name string, rf io.ReaderFrom) error {
	start := time.Now()
	var ip net.IP
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ra := ot.RemoteAddr()
		ip = ra.IP
	}
	var mac net.HardwareAddr
	if h.resolve != nil && ip != nil {
		mac = h.resolve(ip)
	}
	log := h.log.With("ip", ip.String(), "file", printable(name))
	if mac != nil {
		log = log.With("mac", mac.String())
	}
	f, fi, err := h.dir.Open(name)
	if err != nil {
		reason := "refused"
		msg := "access violation"
		if errors.Is(err, safefile.ErrNotFound) {
			reason, msg = "not-found", "file not found"
		}
		h.m.failures.WithLabelValues(reason).Inc()
		log.Warn("tftp request refused", "reason", err)
		h.record(mac, ip, fmt.Sprintf("%s refused: %s", printable(name), msg))
		return errors.New(msg)
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(fi.Size())
	}
	h.m.active.Inc()
	// One read syscall per block is what tftpd-hpa does; a buffer reads
	// ahead (tsize is already set above). Small files (the iPXE loaders)
	// get a small buffer: storms of hundreds of clients fetch them at once.
	n, err := rf.ReadFrom(bufio.NewReaderSize(f, int(min(max(fi.Size()+1, 4<<10), 128<<10))))
	h.m.active.Dec()
	h.m.bytes.Add(float64(n))
	if err != nil && n == 0 && strings.Contains(err.Error(), "sending block 0: code=") {
		// The client declined right after our option acknowledgement:
		// firmware (OVMF, many PXE ROMs) asks for tsize this way and
		// then requests the file again.
		log.Debug("tftp size probe", "err", err)
		h.record(mac, ip, printable(name)+" size probe")
		return nil
	}
	if err != nil {
		h.m.failures.WithLabelValues("transfer").Inc()
		log.Warn("tftp transfer failed", "bytes", n, "err", err)
		h.record(mac, ip, fmt.Sprintf("%s failed after %d bytes", printable(name), n))
		// pin/tftp has already sent the client an error packet.
		return nil
	}
	h.m.transfers.Inc()
	log.Info("tftp transfer", "bytes", n, "duration", time.Since(start).Round(time.Millisecond))
	h.record(mac, ip, printable(name))
	return nil
}

func (h *handler) record(mac net.HardwareAddr, ip net.IP, detail string) {
	if h.rec == nil {
		return
	}
	h.rec.Record(timeline.Event{Time: time.Now(), MAC: mac, IP: ip, Kind: timeline.TFTP, Detail: detail})
}

// OnSuccess implements tftp.Hook (transfers are accounted in read).
func (h *handler) OnSuccess(tftp.TransferStats) {}

// OnFailure implements tftp.Hook: it sees malformed and unsupported
// requests (write requests, garbage) that never reach read.
func (h *handler) OnFailure(st tftp.TransferStats, err error) {
	if st.Filename != "" {
		return // a read transfer: already accounted in read
	}
	h.m.failures.WithLabelValues("bad-request").Inc()
	h.log.Debug("tftp bad request", "ip", st.RemoteAddr.String(), "err", err)
}

// printable quotes names with unusual bytes so logs stay one line.
func printable(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '"' {
			return fmt.Sprintf("%q", name)
		}
	}
	if len(name) > 300 {
		return name[:300] + "…"
	}
	return name
}
