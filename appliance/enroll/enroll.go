package enroll

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// refusedMsg is all a refused agent learns: which check failed is logged
// and recorded on the machine's timeline, not told to the caller.
const refusedMsg = "enrollment refused: the token is not valid for this machine (ask the operator for a new one: swarmboot token create)"

// handleEnroll checks the token and issues the node certificate, all in
// one transaction.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		refuse(w, http.StatusForbidden, "TLS required")
		return
	}
	var req api.EnrollRequest
	if err := api.Decode(body(w, r), &req); err != nil {
		s.Log.Warn("enroll refused", "remote", r.RemoteAddr, "reason", "bad request", "err", err)
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	csr, err := ca.ParseCSR(req.CSR)
	if err != nil {
		s.Log.Warn("enroll refused", "remote", r.RemoteAddr, "reason", "bad CSR", "err", err)
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	fp := ca.Fingerprint(csr.PublicKey)
	h := store.HashToken(req.Token)
	now := s.Now()

	var (
		refusal string // why, for the log and the timeline; "" = issued
		node    store.Node
		retry   bool
		vm      string
	)
	err = s.Store.Update(func(tx *store.Tx) error {
		refusal, retry, vm = "", false, ""
		tok, err := tx.TokenByHash(h)
		if errors.Is(err, store.ErrNotFound) {
			refusal = "unknown token"
			return nil // nothing to record: unknown tokens name no machine
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(tok.Hash[:], h[:]) != 1 {
			refusal = "unknown token"
			return nil
		}
		vm = tok.VM
		name := nodeName(tok)
		mac := tok.MAC
		if mac == "" && len(req.MACs) > 0 {
			mac = req.MACs[0]
		}
		record := func(why string) error {
			refusal = why
			return tx.AppendEvent(store.Event{Time: now, MAC: mac, VM: tok.VM, Kind: string(timeline.EnrollRefused), Detail: why})
		}
		switch {
		case tok.BIOSUUID == "" && tok.MAC == "":
			return record("token is bound to no BIOS UUID or MAC")
		case tok.BIOSUUID != "" && !api.SameBIOSUUID(tok.BIOSUUID, req.BIOSUUID):
			return record("BIOS UUID " + req.BIOSUUID + " does not match the token's machine")
		case tok.MAC != "" && !slices.ContainsFunc(req.MACs, func(m string) bool { return store.NormalizeMAC(m) == tok.MAC }):
			return record("none of the machine's MACs is the token's MAC " + tok.MAC)
		}
		if !tok.Spent.IsZero() {
			if tok.SpentKey != fp {
				return record("token already spent: replayed with another key")
			}
			n, err := tx.Node(name)
			if err != nil || n.KeyFingerprint != fp || !n.Revoked.IsZero() {
				return record("token already spent")
			}
			node, retry = *n, true
			return nil
		}
		if !tok.Expires.IsZero() && now.After(tok.Expires) {
			return record("token expired " + tok.Expires.UTC().Format("2006-01-02 15:04:05Z"))
		}
		der, cert, err := s.CA.SignNode(csr, name)
		if err != nil {
			return err
		}
		if err := tx.SpendToken(h, fp, now); err != nil {
			return err
		}
		if old, err := tx.Node(name); err == nil && old.CertSerial != "" {
			// Re-enrollment with a fresh token (disk replaced): the old
			// certificate stops working.
			if err := tx.RevokeCert(old.CertSerial, now); err != nil {
				return err
			}
		}
		node = store.Node{
			Name: name, VM: tok.VM, BIOSUUID: api.NormalizeUUID(req.BIOSUUID), MACs: normMACs(req.MACs),
			Role: roleFor(tx, tok), KeyFingerprint: fp, CertSerial: cert.SerialNumber.Text(16),
			CertPEM: ca.PEM(der), NotAfter: cert.NotAfter, Enrolled: now,
		}
		if err := tx.PutNode(node); err != nil {
			return err
		}
		return tx.AppendEvent(store.Event{Time: now, MAC: mac, VM: tok.VM, Kind: string(timeline.Enroll),
			Detail: fmt.Sprintf("node %s enrolled as %s, certificate until %s", name, node.Role, cert.NotAfter.UTC().Format("2006-01-02"))})
	})
	log := s.Log.With("remote", r.RemoteAddr, "vm", vm)
	if err != nil {
		log.Error("enroll failed", "err", err)
		refuse(w, http.StatusInternalServerError, "enrollment failed on the appliance; it is logged there")
		return
	}
	if refusal != "" {
		log.Warn("enroll refused", "reason", refusal, "bios_uuid", req.BIOSUUID)
		refuse(w, http.StatusForbidden, refusedMsg)
		return
	}
	if retry {
		log.Info("enroll retried with the same key: same certificate", "node", node.Name)
	} else {
		s.forgetNode(node.Name) // a re-enrollment revoked the old certificate
		log.Info("enrolled", "node", node.Name, "role", node.Role)
		if s.Guestinfo != nil && vm != "" {
			if err := s.Guestinfo.ClearGuestinfo(r.Context(), vm); err != nil {
				log.Warn("could not clear guestinfo.swarmboot.token (the token is spent and useless anyway)", "err", err)
			}
		}
	}
	writeJSON(w, http.StatusOK, api.EnrollResponse{Node: node.Name, Certificate: node.CertPEM, CA: s.CA.CertPEM})
}

// nodeName is the VM name, or mac-<hex> for machines swarmboot did not
// create.
func nodeName(t *store.Token) string {
	if t.VM != "" {
		return t.VM
	}
	return "mac-" + strings.ReplaceAll(t.MAC, ":", "")
}

// roleFor reads the swarm role from the VM record (by name, else by MAC);
// machines without one are workers.
func roleFor(tx *store.Tx, t *store.Token) string {
	var vm *store.VM
	var err error
	if t.VM != "" {
		vm, err = tx.VM(t.VM)
	} else {
		vm, err = tx.VMByMAC(t.MAC)
	}
	if err == nil && strings.EqualFold(vm.Role, api.RoleManager) {
		return api.RoleManager
	}
	return api.RoleWorker
}

func normMACs(ms []string) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, store.NormalizeMAC(m))
	}
	return out
}
