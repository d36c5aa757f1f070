package enroll

import (
	"errors"
	"net/http"
	"time"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// authTTL bounds how long a cached node identity is trusted without
// looking at the store again. Every change made through the Server
// (enroll, renew, Revoke) drops the cache entry at once; the TTL only
// covers changes made to the store behind its back.
const authTTL = 5 * time.Minute

type authEntry struct {
	node   *store.Node // identity fields only (name, VM, MACs, role, serial)
	why    string      // refusal, when node is nil
	expiry time.Time
}

// authed requires a client certificate from our CA (verified by the TLS
// handshake) that is the node's current certificate and not revoked.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *store.Node)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
			s.Log.Warn("node call refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", "no client certificate")
			refuse(w, http.StatusUnauthorized, "a node certificate is required: enroll first")
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		node, why, err := s.identify(ca.Fingerprint(leaf.PublicKey), leaf.SerialNumber.Text(16))
		if err != nil {
			s.Log.Error("node call failed", "err", err)
			refuse(w, http.StatusInternalServerError, "appliance error; it is logged there")
			return
		}
		if node == nil {
			s.Log.Warn("node call refused", "remote", r.RemoteAddr, "path", r.URL.Path, "cn", leaf.Subject.CommonName, "reason", why)
			refuse(w, http.StatusForbidden, "node certificate refused: "+why)
			return
		}
		h(w, r, node)
	})
}

// identify finds the node holding the key fp with certificate serial,
// from the cache or the store.
func (s *Server) identify(fp, serial string) (*store.Node, string, error) {
	key := fp + "/" + serial
	now := time.Now()
	if v, ok := s.auth.Load(key); ok && now.Before(v.(authEntry).expiry) {
		e := v.(authEntry)
		return e.node, e.why, nil
	}
	gen := s.authGen.Load()
	e := authEntry{expiry: now.Add(authTTL)}
	err := s.Store.View(func(tx *store.Tx) error {
		revoked, err := tx.CertRevoked(serial)
		if err != nil {
			return err
		}
		n, err := tx.NodeByKey(fp)
		switch {
		case errors.Is(err, store.ErrNotFound):
			e.why = "no node holds this key"
		case err != nil:
			return err
		case revoked || !n.Revoked.IsZero():
			e.why = "certificate revoked"
		case n.CertSerial != serial:
			e.why = "certificate superseded"
		default:
			n.LastReport = nil // the cache holds identity, not state
			e.node = n
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if s.authN.Add(1) > 100000 { // bound: drop everything rather than grow
		s.auth.Clear()
		s.authN.Store(0)
	}
	s.auth.Store(key, e)
	if s.authGen.Load() != gen {
		// A node changed while we read the store: do not keep what may
		// be stale (the answer itself was right when read).
		s.auth.Delete(key)
	}
	return e.node, e.why, nil
}

// forgetNode drops every cached identity of the node named name.
func (s *Server) forgetNode(name string) {
	s.authGen.Add(1)
	s.auth.Range(func(k, v any) bool {
		if e := v.(authEntry); e.node != nil && e.node.Name == name {
			s.auth.Delete(k)
		}
		return true
	})
}

// RevokeCert revokes the node named name: its certificate stops working
// at once and it cannot enroll again with its spent token. Its swarm node
// is left alone (Revoke and RevokeNode also remove it): for a node whose
// swarm is gone with it.
func (s *Server) RevokeCert(name string) error {
	s.init()
	err := s.Store.Update(func(tx *store.Tx) error {
		if err := tx.RevokeNode(name, s.Now()); err != nil {
			return err
		}
		n, err := tx.Node(name)
		if err != nil {
			return err
		}
		return tx.AppendEvent(store.Event{Time: s.Now(), MAC: n.MAC(), VM: n.VM, Kind: string(timeline.Revoke), Detail: "node certificate revoked"})
	})
	s.forgetNode(name)
	return err
}
