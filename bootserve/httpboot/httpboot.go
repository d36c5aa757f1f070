// Package httpboot is the HTTP side of a network boot: per-machine iPXE
// scripts at /boot/<mac>.ipxe, boot artifacts (kernel, initrd, ISO) under
// /artifacts/ with Range, ETag and sendfile, boot loaders for UEFI HTTP
// boot, /healthz, Prometheus /metrics and a small JSON API over the machine
// timeline (/api/machines, /api/machines/<mac>/events).
//
// What a machine boots is asked of a Booter; the package records every
// script, kernel and initrd download on the machine's timeline.
package httpboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarmboot/swarmboot/bootserve/internal/safefile"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// Server serves HTTP boots. Zero values are sensible defaults except where
// noted.
type Server struct {
	// Booter says what each machine boots (required).
	Booter Booter
	// Default boots machines the Booter does not know (nil → they get a
	// script that waits RetryAfter and asks again).
	Default *Boot
	// RetryAfter is the wait in the "register and retry" script (0 → 30 s).
	RetryAfter time.Duration
	// Artifacts is the directory served under /artifacts/ (kernels,
	// initrds, ISOs; "" → none).
	Artifacts string
	// Loaders is the directory of boot loaders (ipxe.efi, …) served at
	// the top level for UEFI HTTP boot ("" → none).
	Loaders string
	// BaseURL is how machines reach this server, e.g.
	// "http://10.77.0.1:8080" ("" → from each request's Host header).
	BaseURL string
	// Timeline records events and answers /api/machines (nil → a new Log).
	Timeline *timeline.Log
	// Recorder receives events in addition to Timeline (nil → none).
	Recorder timeline.Recorder
	// Resolve maps a client IP to its MAC for artifact downloads that do
	// not name the machine (nil → unnamed downloads have no MAC).
	Resolve func(net.IP) net.HardwareAddr
	// Registry registers the HTTP metrics and is served at /metrics with
	// whatever else (DHCP, TFTP) registered there (nil → a new registry).
	Registry *prometheus.Registry
	// Log is the structured logger (nil → discard).
	Log *slog.Logger

	h *handlers
}

// Handler returns the HTTP handler. It is built once; later calls return
// the same handler.
func (s *Server) Handler() (http.Handler, error) {
	if s.h != nil {
		return s.h.e, nil
	}
	if s.Booter == nil {
		return nil, errors.New("httpboot: Server.Booter is nil: give it the machines' boot table")
	}
	h := &handlers{s: s, log: s.Log, tl: s.Timeline, reg: s.Registry, retry: s.RetryAfter}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.tl == nil {
		h.tl = &timeline.Log{}
	}
	if h.reg == nil {
		h.reg = prometheus.NewRegistry()
	}
	if h.retry <= 0 {
		h.retry = 30 * time.Second
	}
	var err error
	if s.Artifacts != "" {
		if h.artifacts, err = safefile.Open(s.Artifacts); err != nil {
			return nil, fmt.Errorf("httpboot: artifacts %w (check --artifacts)", err)
		}
	}
	if s.Loaders != "" {
		if h.loaders, err = safefile.Open(s.Loaders); err != nil {
			return nil, fmt.Errorf("httpboot: loaders %w", err)
		}
	}
	if h.m, err = newMetrics(h.reg); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.errorHandler
	e.GET("/boot/:file", h.script)
	e.GET("/artifacts/*", h.artifact)
	e.HEAD("/artifacts/*", h.artifact)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{})))
	e.GET("/api/machines", h.machines)
	e.GET("/api/machines/:mac/events", h.events)
	e.GET("/:file", h.loader)
	e.HEAD("/:file", h.loader)
	h.e = e
	s.h = h
	return e, nil
}

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully
// (giving running downloads 5 s). It returns nil on a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	h, err := s.Handler()
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	s.h.log.Info("http serving", "addr", ln.Addr().String(), "artifacts", s.Artifacts)
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

// ListenAndServe listens on the TCP address addr (e.g. ":8080") and serves.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("httpboot: listen %s: %w (choose another --http-addr)", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Close releases the served directories.
func (s *Server) Close() error {
	if s.h == nil {
		return nil
	}
	if s.h.artifacts != nil {
		s.h.artifacts.Close()
	}
	if s.h.loaders != nil {
		s.h.loaders.Close()
	}
	return nil
}

type handlers struct {
	s         *Server
	e         *echo.Echo
	log       *slog.Logger
	tl        *timeline.Log
	reg       *prometheus.Registry
	retry     time.Duration
	artifacts *safefile.Dir
	loaders   *safefile.Dir
	m         *metrics
}

func (h *handlers) record(e timeline.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	h.tl.Record(e)
	if h.s.Recorder != nil {
		h.s.Recorder.Record(e)
	}
}

func (h *handlers) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		msg = fmt.Sprint(he.Message)
	}
	if code >= 500 {
		h.log.Error("http error", "path", c.Request().URL.Path, "err", err)
	}
	_ = c.String(code, msg+"\n")
}

func clientIP(c echo.Context) net.IP {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}
