package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Stages are the machine stages the lab shows, in boot order; the
// dhcp-* events collapse into "dhcp".
var Stages = []string{"dhcp", "tftp", "script", "kernel", "initrd", "enroll", "swarm", "report"}

// stageOf maps a store event kind to a shown stage ("" → not shown).
func stageOf(kind string) string {
	switch {
	case strings.HasPrefix(kind, "dhcp-"):
		return "dhcp"
	case kind == "swarm-init" || kind == "swarm-join":
		return "swarm"
	case kind == "tftp", kind == "script", kind == "kernel", kind == "initrd", kind == "enroll", kind == "report":
		return kind
	}
	return ""
}

// progress prints each machine's new store events as they appear.
type progress struct {
	l    *Lab
	out  io.Writer
	mu   sync.Mutex
	seen map[string]int // events printed per MAC
}

func newProgress(l *Lab, out io.Writer) *progress {
	return &progress{l: l, out: out, seen: map[string]int{}}
}

// events returns mc's events from the store, printing the new ones.
func (p *progress) events(mc *Machine) ([]store.Event, error) {
	var ev []store.Event
	err := p.l.d.Store().View(func(tx *store.Tx) (err error) {
		ev, err = tx.Events(mc.MAC)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range ev[min(p.seen[mc.MAC], len(ev)):] {
		if st := stageOf(e.Kind); st != "" {
			fmt.Fprintf(p.out, "  %s %-8s %-7s +%5.1fs %-11s %s\n", e.Time.Format("15:04:05"), mc.Name, mc.Role,
				e.Time.Sub(mc.started).Seconds(), e.Kind, redact(e.Detail))
		}
	}
	p.seen[mc.MAC] = len(ev)
	return ev, nil
}

func redact(s string) string {
	if i := strings.Index(s, "swarmboot.token="); i >= 0 {
		return s[:i] + "swarmboot.token=…"
	}
	return s
}

// Report is a node's last report, as the appliance stored it.
func (l *Lab) Report(name string) (*api.Report, time.Time, error) {
	var n *store.Node
	err := l.d.Store().View(func(tx *store.Tx) (err error) {
		n, err = tx.Node(name)
		return err
	})
	if err != nil || len(n.LastReport) == 0 {
		return nil, time.Time{}, err
	}
	var r api.Report
	if err := json.Unmarshal(n.LastReport, &r); err != nil {
		return nil, time.Time{}, err
	}
	return &r, n.LastSeen, nil
}

// waitSwarm prints mc's progress until its agent reports, after since,
// that it is active in the swarm. It fails when the VM stops or when no
// new event arrives for StageTimeout.
func (p *progress) waitSwarm(ctx context.Context, mc *Machine, since time.Time) (*api.Report, error) {
	last, lastN := time.Now(), -1
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		ev, err := p.events(mc)
		if err != nil {
			return nil, err
		}
		if len(ev) != lastN {
			last, lastN = time.Now(), len(ev)
		}
		r, seen, err := p.l.Report(mc.Name)
		if err == nil && r != nil && seen.After(since) && r.Swarm.State == "active" {
			return r, nil
		}
		if time.Since(last) > p.l.opt.StageTimeout {
			return nil, fmt.Errorf("lab: %s: no progress for %v after its last event; serial log %s (tail):\n%s",
				mc.Name, p.l.opt.StageTimeout, mc.Serial, tail(mc.vm.Output(), 40))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: %s: %w; serial log %s (tail):\n%s", mc.Name, ctx.Err(), mc.Serial, tail(mc.vm.Output(), 40))
		case <-mc.vm.Done():
			return nil, fmt.Errorf("lab: %s: the VM stopped: %s\nserial (tail):\n%s", mc.Name, mc.vm.Stderr(), tail(mc.vm.Output(), 40))
		case <-tick.C:
		}
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
