package daemon

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// bootKinds are the steps bootserve records on its timeline; every other
// kind (timeline.Token, Enroll, SwarmJoin, Report, Revoke, SwarmOp,
// Rotate, …) is written to the store by the appliance. The mirror copies boot steps timeline →
// store and the rest store → timeline, so nothing is copied back.
var bootKinds = map[timeline.Kind]bool{
	timeline.DHCPDiscover: true, timeline.DHCPOffer: true, timeline.DHCPRequest: true, timeline.DHCPAck: true,
	timeline.DHCPNak: true, timeline.DHCPDecline: true, timeline.DHCPRelease: true,
	timeline.TFTP: true, timeline.Script: true, timeline.Kernel: true, timeline.Initrd: true, timeline.ISO: true,
}

// mirror keeps the in-memory boot timeline and the store's events in step
// by polling both (neither offers a subscription).
type mirror struct {
	st     *store.Store
	tl     *timeline.Log
	log    *slog.Logger
	forget func(mac string, at time.Time) // a machine enrolled at: its token is spent

	// toStore: per MAC, the last timeline event looked at.
	toStore map[string]timeline.Event
	// toTimeline: per MAC, how many store events were looked at.
	toTimeline map[string]int
}

func (m *mirror) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.once()
		}
	}
}

// once copies what is new in either direction.
func (m *mirror) once() {
	if m.toStore == nil {
		m.toStore, m.toTimeline = map[string]timeline.Event{}, map[string]int{}
	}
	macs := map[string]bool{}
	var out []store.Event
	for _, mc := range m.tl.Machines() {
		if len(mc.MAC) == 0 {
			continue
		}
		mac := mc.MAC.String()
		macs[mac] = true
		out = append(out, m.newBootEvents(mac, m.tl.Events(mc.MAC))...)
	}
	if len(out) > 0 { // an empty write transaction would still sync the file
		err := m.st.Update(func(tx *store.Tx) error {
			for _, e := range out {
				if err := tx.AppendEvent(e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			m.log.Warn("mirror boot events into the store", "err", err)
			return
		}
	}
	m.fromStore(macs)
}

// newBootEvents returns mac's boot events recorded since the last call:
// those after the last event seen (the timeline keeps record order).
func (m *mirror) newBootEvents(mac string, evs []timeline.Event) []store.Event {
	from := 0
	if last, ok := m.toStore[mac]; ok {
		for i := len(evs) - 1; i >= 0; i-- {
			if sameEvent(evs[i], last) {
				from = i + 1
				break
			}
		}
	}
	if len(evs) > 0 {
		m.toStore[mac] = evs[len(evs)-1]
	}
	var out []store.Event
	for _, e := range evs[from:] {
		if !bootKinds[e.Kind] {
			continue
		}
		detail := Redact(e.Detail)
		if e.IP != nil {
			detail = strings.TrimSpace(detail + " ip=" + e.IP.String())
		}
		if e.Arch != "" {
			detail += " arch=" + e.Arch
		}
		out = append(out, store.Event{Time: e.Time, MAC: mac, Kind: string(e.Kind), Detail: detail})
	}
	return out
}

func sameEvent(a, b timeline.Event) bool {
	return a.Time.Equal(b.Time) && a.Kind == b.Kind && a.Detail == b.Detail && a.IP.Equal(b.IP) && a.Arch == b.Arch
}

// fromStore copies the store's non-boot events of the machines in macs
// (and of every VM the store knows) onto the timeline, and drops the
// kernel-line token of every machine that enrolled.
func (m *mirror) fromStore(macs map[string]bool) {
	var add []timeline.Event
	err := m.st.View(func(tx *store.Tx) error {
		vms, err := tx.VMs()
		if err != nil {
			return err
		}
		for _, vm := range vms {
			if vm.MAC != "" {
				macs[store.NormalizeMAC(vm.MAC)] = true
			}
		}
		for mac := range macs {
			evs, err := tx.Events(mac)
			if err != nil {
				return err
			}
			done := m.toTimeline[mac]
			if done > len(evs) {
				done = 0 // the store was replaced under us: start over
			}
			hw, _ := net.ParseMAC(mac)
			for _, e := range evs[done:] {
				if timeline.Kind(e.Kind) == timeline.Enroll && m.forget != nil {
					m.forget(mac, e.Time)
				}
				if bootKinds[timeline.Kind(e.Kind)] || hw == nil {
					continue
				}
				detail := e.Detail
				if e.VM != "" {
					detail = strings.TrimSpace("vm " + e.VM + ": " + detail)
				}
				add = append(add, timeline.Event{Time: e.Time, MAC: hw, Kind: timeline.Kind(e.Kind), Detail: Redact(detail)})
			}
			m.toTimeline[mac] = len(evs)
		}
		return nil
	})
	if err != nil {
		m.log.Warn("mirror store events onto the timeline", "err", err)
		return
	}
	for _, e := range add {
		m.tl.Record(e)
	}
}
