package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Server answers the admin API on a unix socket. Every connection's peer
// is checked (SO_PEERCRED): only root and the appliance's own uid are
// served; anyone else gets 403 and a line in the log.
type Server struct {
	Ops *Ops
	Log *slog.Logger // nil → discard; tokens never reach it
	// UID is the uid allowed besides root (0 → the process's own uid).
	UID uint32
	// ReadTimeout and WriteTimeout bound a call (0 → 10 s and 30 s); a
	// roll's progress stream lifts them for itself.
	ReadTimeout, WriteTimeout time.Duration
}

// defaultWriteTimeout is the server's WriteTimeout when none is set.
const defaultWriteTimeout = 30 * time.Second

type credKey struct{}

// stopKey carries Serve's context into each connection's: work that
// outlives a caller who hung up still ends when the server stops.
type stopKey struct{}

type credResult struct {
	cred Cred
	err  error
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) self() uint32 {
	if s.UID != 0 {
		return s.UID
	}
	return uint32(os.Getuid())
}

// Serve answers on l (from Listen) until ctx ends; nil on a clean stop.
// It closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := ctx
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       orDefault(s.ReadTimeout, 10*time.Second),
		WriteTimeout:      orDefault(s.WriteTimeout, defaultWriteTimeout),
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cred, err := peerCred(c)
			ctx = context.WithValue(ctx, stopKey{}, stop)
			return context.WithValue(ctx, credKey{}, credResult{cred, err})
		},
		ErrorLog: slog.NewLogLogger(s.log().Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Handler is the admin API; every request needs a peer credential that
// checkCred allows (set by Serve's ConnContext).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathTokens, s.handleToken)
	mux.HandleFunc("POST "+PathRevoke, s.handleRevoke)
	mux.HandleFunc("GET "+PathNodes, s.handleNodes)
	mux.HandleFunc("POST "+PathRotate, s.handleRotate)
	mux.HandleFunc("GET "+PathRotate, s.handleRotation)
	mux.HandleFunc("POST "+PathDestroy, s.handleDestroy)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cr, ok := r.Context().Value(credKey{}).(credResult)
		if !ok || cr.err != nil {
			s.log().Warn("admin call refused", "path", r.URL.Path, "reason", "no peer credentials", "err", cr.err)
			reply(w, http.StatusForbidden, ErrorResponse{"admin socket: cannot tell who is calling (no peer credentials); refused"})
			return
		}
		if err := checkCred(cr.cred, s.self()); err != nil {
			s.log().Warn("admin call refused", "path", r.URL.Path, "uid", cr.cred.UID, "pid", cr.cred.PID)
			reply(w, http.StatusForbidden, ErrorResponse{err.Error()})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequest+1)
		mux.ServeHTTP(w, r)
	})
}

func callerOf(r *http.Request) Cred {
	cr, _ := r.Context().Value(credKey{}).(credResult)
	return cr.cred
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decode(r.Body, &req); err != nil {
		reply(w, http.StatusBadRequest, ErrorResponse{err.Error()})
		return
	}
	c := callerOf(r)
	log := s.log().With("uid", c.UID, "pid", c.PID, "vm", req.VM, "mac", req.MAC)
	resp, err := s.Ops.CreateToken(req)
	if err != nil {
		log.Warn("admin: token not created", "err", err)
		reply(w, http.StatusBadRequest, ErrorResponse{err.Error()})
		return
	}
	// The token goes into the response only.
	log.Info("admin: enrollment token created", "expires", resp.Expires.Format(time.RFC3339), "kernel_line", req.KernelLine)
	reply(w, http.StatusOK, resp)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := decode(r.Body, &req); err != nil {
		reply(w, http.StatusBadRequest, ErrorResponse{err.Error()})
		return
	}
	c := callerOf(r)
	log := s.log().With("uid", c.UID, "pid", c.PID, "node", req.Name)
	// The swarm node's removal is not abandoned when the caller hangs up;
	// Ops bounds it (RevokeWait), and it ends when the server stops.
	ctx, cancel := detached(r)
	defer cancel()
	resp, err := s.Ops.Revoke(ctx, req.Name)
	switch {
	case errors.Is(err, ErrNoNode):
		reply(w, http.StatusNotFound, ErrorResponse{"no node " + printable(req.Name) + ": see swarmboot node ls"})
		return
	case err != nil:
		log.Error("admin: revoke failed", "err", err)
		reply(w, http.StatusInternalServerError, ErrorResponse{"revoke " + printable(req.Name) + ": " + err.Error()})
		return
	}
	if resp.Already {
		log.Info("admin: node was revoked already", "revoked", resp.Revoked.Format(time.RFC3339))
	} else {
		log.Info("admin: node certificate revoked", "swarm", resp.SwarmNote)
	}
	reply(w, http.StatusOK, resp)
}

func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.Ops.Nodes()
	if err != nil {
		s.log().Error("admin: list nodes failed", "err", err)
		reply(w, http.StatusInternalServerError, ErrorResponse{"list nodes: " + err.Error()})
		return
	}
	reply(w, http.StatusOK, NodesResponse{Nodes: nodes})
}

// detached is r's context without the caller's hang-up: it ends when
// Serve's context does (or cancel is called).
func detached(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	stop, ok := r.Context().Value(stopKey{}).(context.Context)
	if !ok {
		return ctx, cancel
	}
	release := context.AfterFunc(stop, cancel)
	return ctx, func() { release(); cancel() }
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
