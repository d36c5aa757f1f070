// Package enroll is the appliance's agent API, served over TLS only:
// POST /v1/enroll turns a one-time token into a node certificate; with that
// certificate (mutual TLS) an agent asks GET /v1/node/plan what to do with
// the swarm, heartbeats with POST /v1/node/report and renews its
// certificate with POST /v1/node/renew. The answer to an active manager's
// heartbeat may carry node operations (drain, activate, remove) that the
// Server's SetAvailability and Remove queued for it (ops.go): the Server
// is a swarm.Operator.
//
// Tokens are only ever compared as SHA-256 hashes; tokens, join tokens and
// keys never reach a log line, an event or an error message.
//
//	srv := &enroll.Server{Store: st, CA: authority, Hosts: []string{"10.0.0.5"}}
//	err := srv.ListenAndServe(ctx, ":8443")
package enroll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// GuestinfoClearer removes guestinfo.swarmboot.token from a VM swarmboot
// created, once its token is spent. The vSphere side implements it.
type GuestinfoClearer interface {
	ClearGuestinfo(ctx context.Context, vm string) error
}

// Server is the agent API. Zero values of the optional fields are sensible.
type Server struct {
	Store *store.Store
	CA    *ca.CA
	// Hosts are the DNS names and IPs the server certificate is for (what
	// the images' appliance.json URL names).
	Hosts []string
	// Swarm is an existing swarm's manager (its Docker API). Nil means the
	// swarm is swarmboot-managed: one manager inits it and the managers'
	// agents push the join tokens.
	Swarm     swarm.Source
	Guestinfo GuestinfoClearer // nil: nothing to clear
	Log       *slog.Logger     // nil: discard
	Now       func() time.Time // nil: time.Now
	// ReportEvent is the least time between two "report" timeline events
	// of a node whose report did not change (default 10 min); a change
	// is always recorded.
	ReportEvent time.Duration
	// FlushEvery is how often heartbeats are committed to the store
	// (default 1 s); see flush.go.
	FlushEvery time.Duration
	// MemberGrace is how much newer than a node's join a swarm member list
	// must be before "not listed" means "removed" (default 10 s).
	MemberGrace time.Duration
	// OpTake is how long a node operation (SetAvailability, Remove) waits
	// for a manager agent to take it, and how recently one must have
	// reported for an operation to be queued at all (default 90 s: three
	// heartbeats).
	OpTake time.Duration
	// RevokeWait is how long Revoke waits for a manager to take the
	// revoked node out of the swarm before it returns (default 20 s; the
	// removal goes on in the background up to OpTake more).
	RevokeWait time.Duration

	pushed   swarm.Pushed
	initOnce sync.Once
	nodes    sync.Map // node name → *nodeState (flush.go)
	auth     sync.Map // key fingerprint/serial → authEntry (auth.go)
	authN    atomic.Int64
	authGen  atomic.Int64 // bumped by every forgetNode
	ops      opQueue      // node operations for manager agents (ops.go)
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.ReportEvent == 0 {
			s.ReportEvent = 10 * time.Minute
		}
		if s.MemberGrace == 0 {
			s.MemberGrace = 10 * time.Second
		}
		if s.OpTake == 0 {
			s.OpTake = 90 * time.Second
		}
		if s.RevokeWait == 0 {
			s.RevokeWait = 20 * time.Second
		}
		if s.FlushEvery == 0 {
			s.FlushEvery = time.Second
		}
	})
}

func (s *Server) swarmSource() swarm.Source {
	if s.Swarm != nil {
		return s.Swarm
	}
	return &s.pushed
}

// CurrentSwarm is the swarm as the appliance knows it now, with its node
// list: the configured Swarm source's answer (an existing swarm's manager,
// asked through its Docker API), else what the managed managers' agents
// last pushed (swarm.ErrNoSwarm before the first push). Info.From says
// which. The Info carries the join tokens: print it with its String or
// LogValue, or print its Nodes, never its token fields. It is a copy the
// caller may keep.
//
// (It is not called Swarm because that is the source field's name.)
func (s *Server) CurrentSwarm(ctx context.Context) (swarm.Info, error) {
	i, err := s.swarmSource().Swarm(ctx)
	return i.Clone(), err
}

// Handler is the agent API's HTTP handler (it needs the TLS state of a
// server configured with TLSConfig).
func (s *Server) Handler() http.Handler {
	s.init()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathEnroll, s.handleEnroll)
	mux.Handle("GET "+api.PathPlan, s.authed(s.handlePlan))
	mux.Handle("POST "+api.PathReport, s.authed(s.handleReport))
	mux.Handle("POST "+api.PathRenew, s.authed(s.handleRenew))
	mux.Handle("GET "+api.PathOps, s.authed(s.handleOps))
	return mux
}

// TLSConfig is the server side: a fresh server certificate from the CA,
// client certificates from the CA verified when given (enroll needs none;
// every /v1/node/ call does), TLS 1.3 only.
func (s *Server) TLSConfig() (*tls.Config, error) {
	cert, err := s.CA.ServerCert(s.Hosts...)
	if err != nil {
		return nil, fmt.Errorf("agent API server certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.CA.Pool(),
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// Serve answers the agent API on l (wrapped in TLS) until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.init()
	cfg, err := s.TLSConfig()
	if err != nil {
		return err
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { s.flushLoop(bctx); close(bdone) }()
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// TLS handshake failures (no or foreign client certificates)
		// land here; they carry no secrets.
		ErrorLog: log.New(&slogWriter{s.Log}, "", 0),
	}
	shutPolls := s.ops.openPolls()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(l, cfg)) }()
	select {
	case err = <-errc:
		shutPolls()
	case <-ctx.Done():
		shutPolls() // waiting polls answer now: Shutdown waits for idle connections
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
		<-errc
	}
	bcancel()
	<-bdone
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// ListenAndServe listens on addr (TCP) and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	return s.Serve(ctx, l)
}

type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("agent API", "http", string(p))
	return len(p), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = api.Encode(w, v)
}

func refuse(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.Error{Error: msg})
}

// body limits the request body to api.MaxBody.
func body(w http.ResponseWriter, r *http.Request) io.Reader {
	return http.MaxBytesReader(w, r.Body, api.MaxBody)
}
