package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// lastReport is the node's latest heartbeat (pending in memory, else
// stored) and when its swarm node ID was first seen.
func (s *Server) lastReport(n *store.Node) (*api.Report, time.Time) {
	var raw []byte
	var seen time.Time
	if r, _, at, ok := s.latestFor(n.Name); ok {
		raw, seen = r, at
	} else {
		// Not reported since the appliance started: what the store has.
		s.Store.View(func(tx *store.Tx) error {
			if cur, err := tx.Node(n.Name); err == nil {
				raw, seen = cur.LastReport, cur.SwarmNodeSeen
			}
			return nil
		})
	}
	if len(raw) == 0 {
		return nil, seen
	}
	var rep api.Report
	if json.Unmarshal(raw, &rep) != nil {
		return nil, seen
	}
	return &rep, seen
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request, n *store.Node) {
	plan, err := s.plan(r.Context(), n)
	if err != nil {
		s.Log.Error("plan failed", "node", n.Name, "err", err)
		refuse(w, http.StatusInternalServerError, "appliance error; it is logged there")
		return
	}
	// Never log the plan itself: it carries the join token.
	s.Log.Debug("plan", "node", n.Name, "action", plan.Action, "reason", plan.Reason)
	writeJSON(w, http.StatusOK, plan)
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, n *store.Node) {
	var rep api.Report
	if err := api.Decode(body(w, r), &rep); err != nil {
		s.Log.Warn("report refused", "node", n.Name, "err", err)
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.Now()
	opResults := rep.OpResults
	rep.OpResults = nil // delivered to the waiting calls, not stored
	if push := rep.JoinTokens; push != nil {
		s.acceptPush(n, &rep)
		rep.JoinTokens = nil // secrets stay in memory, never in the store
	}
	if rep.Time.IsZero() {
		rep.Time = now
	}
	raw, err := json.Marshal(&rep)
	if err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	sum := summary(&rep)
	event := s.reportEvent(n.Name, sum, now)
	var events []store.Event
	if event {
		events = append(events, store.Event{Time: now, MAC: n.MAC(), VM: n.VM, Kind: string(timeline.Report), Detail: sum})
	}
	if prev, _ := s.lastReport(n); rep.Swarm.State == "active" && (prev == nil || prev.Swarm.State != "active" || prev.Swarm.NodeID != rep.Swarm.NodeID) {
		events = append(events, store.Event{Time: now, MAC: n.MAC(), VM: n.VM, Kind: string(timeline.SwarmJoin),
			Detail: fmt.Sprintf("in the swarm as %s, node %s", rep.Swarm.Role, rep.Swarm.NodeID)})
	}
	s.queueReport(n.Name, raw, rep.Swarm.NodeID, now, events)
	rep.OpResults = opResults
	if ops := s.reportOps(n, &rep, now); len(ops) > 0 {
		writeJSON(w, http.StatusOK, api.ReportAnswer{Ops: ops})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reportOps takes the results a manager's report carries and returns the
// node operations for it (ops.go). Only a node the appliance made manager,
// active in the swarm with control available, and only for a swarm
// swarmboot made (an existing swarm's manager is asked directly), gets
// any; results from any other node are logged and dropped.
func (s *Server) reportOps(n *store.Node, rep *api.Report, now time.Time) []api.NodeOp {
	if s.Swarm != nil || n.Role != api.RoleManager || rep.Swarm.State != "active" || !rep.Swarm.ControlAvailable {
		if len(rep.OpResults) > 0 {
			s.Log.Warn("node operation results from a node that is not an active manager: ignored", "node", n.Name, "results", len(rep.OpResults))
		}
		return nil
	}
	s.takeResults(n.Name, rep.OpResults)
	return s.takeOps(n.Name, now)
}

// summary is the report's one-line timeline form.
func summary(r *api.Report) string {
	disk := "disk: RAM (not persistent)"
	if r.Disk.Persistent {
		disk = fmt.Sprintf("disk: %s %s %s", r.Disk.Device, r.Disk.FSType, r.Disk.Formatted)
	}
	probe := "probe ok"
	if !r.Disk.ProbeOK {
		probe = "probe FAILED"
	}
	sw := "swarm " + r.Swarm.State
	if r.Swarm.State == "active" {
		sw += " " + r.Swarm.Role + " " + r.Swarm.NodeID
	}
	return fmt.Sprintf("image %s, docker %s, %s, %s, %s", r.ImageVersion, r.Docker.Version, sw, disk, probe)
}

// acceptPush takes join tokens from a manager node's agent: only nodes the
// appliance made managers, and only when their daemon says it is an
// active manager.
func (s *Server) acceptPush(n *store.Node, rep *api.Report) {
	p := rep.JoinTokens
	if n.Role != api.RoleManager || rep.Swarm.State != "active" || !rep.Swarm.ControlAvailable || p.Worker == "" || p.Manager == "" {
		s.Log.Warn("join tokens pushed by a node that is not an active manager: ignored", "node", n.Name)
		return
	}
	prev, _ := s.pushed.Swarm(context.Background())
	next := swarmInfo(p, n.Name, s.Now())
	s.pushed.Set(next)
	// Every manager heartbeat pushes: say so only when something changed.
	level := slog.LevelDebug
	if prev.ClusterID != next.ClusterID || prev.Worker != next.Worker || prev.Manager != next.Manager ||
		!sameSet(prev.NodeIDs, next.NodeIDs) || prev.Ready() != next.Ready() {
		level = slog.LevelInfo
	}
	s.Log.Log(context.Background(), level, "swarm join tokens and members updated (held in memory)", "node", n.Name,
		"cluster", p.ClusterID, "members", len(p.NodeIDs), "ready", next.Ready())
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request, n *store.Node) {
	var req api.RenewRequest
	if err := api.Decode(body(w, r), &req); err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	csr, err := ca.ParseCSR(req.CSR)
	if err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.Now()
	var pemCert []byte
	err = s.Store.Update(func(tx *store.Tx) error {
		cur, err := tx.Node(n.Name)
		if err != nil {
			return err
		}
		if cur.CertSerial != n.CertSerial {
			return errors.New("certificate changed meanwhile")
		}
		der, cert, err := s.CA.SignNode(csr, cur.Name)
		if err != nil {
			return err
		}
		if err := tx.RevokeCert(cur.CertSerial, now); err != nil {
			return err
		}
		cur.KeyFingerprint, cur.CertSerial, cur.CertPEM, cur.NotAfter = ca.Fingerprint(csr.PublicKey), cert.SerialNumber.Text(16), ca.PEM(der), cert.NotAfter
		pemCert = cur.CertPEM
		if err := tx.PutNode(*cur); err != nil {
			return err
		}
		return tx.AppendEvent(store.Event{Time: now, MAC: cur.MAC(), VM: cur.VM, Kind: string(timeline.Renew), Detail: "certificate renewed until " + cert.NotAfter.UTC().Format("2006-01-02")})
	})
	if err != nil {
		s.Log.Error("renew failed", "node", n.Name, "err", err)
		refuse(w, http.StatusConflict, "renew failed: "+err.Error())
		return
	}
	s.forgetNode(n.Name)
	s.Log.Info("certificate renewed", "node", n.Name)
	writeJSON(w, http.StatusOK, api.RenewResponse{Certificate: pemCert})
}

// sameSet reports whether a and b hold the same strings in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
