// Package swarm holds what the appliance knows about the site's Docker
// swarm: its join tokens, manager addresses, cluster ID and members. They
// come either from an existing manager's Docker API (Remote) or from
// swarmboot-managed managers whose agents push them (Pushed), together
// with the node list as the manager's Docker API shows it. Join tokens
// live in memory only; Info's String and LogValue redact them so an
// accidental log line leaks nothing.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// ErrNoSwarm means no source knows the swarm yet (no manager has pushed,
// or the remote manager is unreachable): the plan is "wait".
var ErrNoSwarm = errors.New("swarm: join tokens not known yet")

// Info is the swarm as seen from a manager. Worker and Manager are secrets.
type Info struct {
	ClusterID string
	Worker    string // join token for workers
	Manager   string // join token for managers
	Managers  []string
	NodeIDs   []string // current members; nil when unknown
	// Nodes is the manager's node list (hostname, role, state, …) for
	// people to read; nil when the source did not give one.
	Nodes []api.SwarmNode
	// From says who answered: "lab-m1 (its agent, from its Docker API)"
	// for a push, the Docker API's URL for a Remote.
	From string
	At   time.Time
}

// String never prints the tokens.
func (i Info) String() string {
	s := fmt.Sprintf("swarm %s (%d managers, %d nodes, tokens redacted)", i.ClusterID, len(i.Managers), max(len(i.NodeIDs), len(i.Nodes)))
	if i.From != "" {
		s += " from " + i.From
	}
	return s
}

// LogValue never logs the tokens.
func (i Info) LogValue() slog.Value {
	return slog.GroupValue(slog.String("cluster", i.ClusterID), slog.Int("managers", len(i.Managers)),
		slog.Int("nodes", max(len(i.NodeIDs), len(i.Nodes))), slog.String("from", i.From))
}

// Clone is a copy of i whose lists the caller may change. Sources hand
// out the Info they hold (plans ask on every agent call), so a caller that
// keeps or edits one clones it first.
func (i Info) Clone() Info {
	i.Managers, i.NodeIDs, i.Nodes = slices.Clone(i.Managers), slices.Clone(i.NodeIDs), slices.Clone(i.Nodes)
	return i
}

// Ready counts the listed nodes whose state is "ready".
func (i Info) Ready() int {
	n := 0
	for _, sn := range i.Nodes {
		if sn.State == api.NodeReady {
			n++
		}
	}
	return n
}

// Token returns the join token for role ("manager" or "worker").
func (i Info) Token(role string) string {
	if role == "manager" {
		return i.Manager
	}
	return i.Worker
}

// Member reports whether nodeID is in the swarm; known is false when the
// member list is not known.
func (i Info) Member(nodeID string) (member, known bool) {
	if i.NodeIDs == nil {
		return false, false
	}
	return slices.Contains(i.NodeIDs, nodeID), true
}

// Source answers what the swarm is now. The Info's lists may be the
// source's own: read them, or Clone the Info.
type Source interface {
	Swarm(ctx context.Context) (Info, error)
}

// Pushed is the swarm as the managed managers' agents last pushed it.
type Pushed struct {
	mu   sync.Mutex
	info Info
}

// Set records a manager's push.
func (p *Pushed) Set(i Info) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.info = i
}

// Swarm returns the last push, or ErrNoSwarm.
func (p *Pushed) Swarm(context.Context) (Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info.Worker == "" {
		return Info{}, ErrNoSwarm
	}
	return p.info, nil
}
