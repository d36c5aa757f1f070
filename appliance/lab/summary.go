package lab

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// NodeSummary is one machine's state as its agent last reported it.
type NodeSummary struct {
	Name, Role, Firmware string
	Report               *api.Report
	// Stages maps each stage (Stages) to the time from power-on to its
	// first event in the current boot.
	Stages map[string]time.Duration
	Events []store.Event // in time order
}

// Summary collects every machine's last report and stage times since its
// last power-on or reset.
func (l *Lab) Summary() ([]NodeSummary, error) {
	var out []NodeSummary
	for _, mc := range l.Machines {
		r, _, err := l.Report(mc.Name)
		if err != nil {
			return nil, fmt.Errorf("lab: %s: %w", mc.Name, err)
		}
		ev, err := l.prog.events(mc)
		if err != nil {
			return nil, err
		}
		// The store keeps events in the order they were written; a
		// report's is written by the next flush, after steps that came
		// later (a roll's activation). Time order is the timeline.
		slices.SortStableFunc(ev, func(a, b store.Event) int { return a.Time.Compare(b.Time) })
		ns := NodeSummary{Name: mc.Name, Role: mc.Role, Firmware: mc.Firmware, Report: r, Stages: map[string]time.Duration{}, Events: ev}
		for _, e := range ev {
			st := stageOf(e.Kind)
			if st == "" || e.Time.Before(mc.started) {
				continue
			}
			if _, ok := ns.Stages[st]; !ok {
				ns.Stages[st] = e.Time.Sub(mc.started)
			}
		}
		out = append(out, ns)
	}
	return out, nil
}

// Swarm waits until the swarm's node list, as the manager's Docker API
// gave it to the appliance after since (its agent pushes it with each
// heartbeat), lists every lab machine by the node ID its agent reported,
// all ready. On timeout it returns the last list and an error naming what
// is missing.
func (l *Lab) Swarm(ctx context.Context, since time.Time) (swarm.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		info, err := l.d.Swarm(ctx)
		missing := []string{"a node list pushed by the manager"}
		if err == nil && info.At.After(since) {
			missing = l.missing(info)
		}
		if len(missing) == 0 {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("lab: the manager's node list lacks %s (as of %s)", strings.Join(missing, ", "), info.At.Format(time.TimeOnly))
		case <-time.After(time.Second):
		}
	}
}

// missing names the machines not listed ready in info.
func (l *Lab) missing(info swarm.Info) []string {
	var out []string
	for _, mc := range l.Machines {
		r, _, err := l.Report(mc.Name)
		if err != nil || r == nil || r.Swarm.NodeID == "" {
			out = append(out, mc.Name+" (no node ID reported)")
			continue
		}
		i := slices.IndexFunc(info.Nodes, func(n api.SwarmNode) bool { return n.ID == r.Swarm.NodeID })
		switch {
		case i < 0:
			out = append(out, mc.Name+" (node "+r.Swarm.NodeID+")")
		case info.Nodes[i].State != api.NodeReady || info.Nodes[i].Role != mc.Role:
			out = append(out, fmt.Sprintf("%s as a ready %s (%s %s)", mc.Name, mc.Role, info.Nodes[i].Role, info.Nodes[i].State))
		}
	}
	return out
}

// PrintSummary writes the swarm's node list as the manager's Docker API
// gave it, each node's image version and disk, and its stage times.
func PrintSummary(w io.Writer, info swarm.Info, nodes []NodeSummary) {
	name := map[string]string{}
	for _, n := range nodes {
		if n.Report != nil {
			name[n.Report.Swarm.NodeID] = n.Name
		}
	}
	fmt.Fprintf(w, "swarm %s, nodes from %s at %s:\n", info.ClusterID, info.From, info.At.Format(time.TimeOnly))
	fmt.Fprintf(w, "  %-8s %-26s %-8s %-6s %-7s %-15s %-7s %s\n", "NAME", "NODE ID", "ROLE", "STATE", "AVAIL", "ADDRESS", "ENGINE", "LEADER")
	for _, sn := range info.Nodes {
		n := name[sn.ID]
		if n == "" {
			n = sn.Hostname
		}
		leader := ""
		if sn.Leader {
			leader = "yes"
		}
		fmt.Fprintf(w, "  %-8s %-26s %-8s %-6s %-7s %-15s %-7s %s\n", n, sn.ID, sn.Role, sn.State, sn.Availability, sn.Addr,
			strings.SplitN(sn.EngineVersion, "+", 2)[0], leader)
	}
	fmt.Fprintf(w, "images and disks (the agents' last reports):\n")
	for _, n := range nodes {
		if n.Report != nil {
			d := n.Report.Disk
			fmt.Fprintf(w, "  %-8s image=%s persistent=%v device=%s fs=%s formatted=%s\n", n.Name, n.Report.ImageVersion,
				d.Persistent, d.Device, d.FSType, d.Formatted)
			for _, p := range d.Problems {
				fmt.Fprintf(w, "           problem: %s\n", p)
			}
		}
	}
	fmt.Fprintf(w, "seconds from power-on:\n  %-8s %-4s", "NAME", "FW")
	for _, s := range Stages {
		fmt.Fprintf(w, " %7s", s)
	}
	fmt.Fprintln(w)
	for _, n := range nodes {
		fmt.Fprintf(w, "  %-8s %-4s", n.Name, n.Firmware)
		for _, s := range Stages {
			if d, ok := n.Stages[s]; ok {
				fmt.Fprintf(w, " %7.1f", d.Seconds())
			} else {
				fmt.Fprintf(w, " %7s", "-")
			}
		}
		fmt.Fprintln(w)
	}
}

// RebootWorkers reboots every worker: the running ones first, by QMP
// system_reset, then those powered off to keep within MaxVMs, by a cold
// start from their disk. It returns when each has reported from the swarm
// again.
func (l *Lab) RebootWorkers(ctx context.Context) error {
	var reset, cold []*Machine
	run := l.running()
	for _, mc := range l.Machines {
		if mc.Role != "worker" {
			continue
		}
		if slices.Contains(run, mc) {
			reset = append(reset, mc)
		} else {
			cold = append(cold, mc)
		}
	}
	for _, mc := range append(reset, cold...) {
		at := time.Now()
		l.power.Lock()
		err := l.reset(ctx, mc)
		l.power.Unlock()
		if err != nil {
			return err
		}
		if _, err := l.prog.waitSwarm(ctx, mc, at); err != nil {
			return err
		}
	}
	return nil
}

// Usage is the appliance's (this process's) CPU time since the first VM
// was powered on, and its peak resident memory, from getrusage(2). The
// QEMU VMs are child processes and not counted.
func (l *Lab) Usage() (cpu time.Duration, maxRSS int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return rusageCPU(&ru) - l.cpuAtBoot, ru.Maxrss * 1024
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
