// Package swarm holds what the appliance knows about the site's Docker
// swarm: its join tokens, manager addresses, cluster ID and members. They
// come either from an existing manager's Docker API (Remote) or from
// swarmboot-managed managers whose agents push them (Pushed). Join tokens
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
	At        time.Time
}

// String never prints the tokens.
func (i Info) String() string {
	return fmt.Sprintf("swarm %s (%d managers, %d nodes, tokens redacted)", i.ClusterID, len(i.Managers), len(i.NodeIDs))
}

// LogValue never logs the tokens.
func (i Info) LogValue() slog.Value {
	return slog.GroupValue(slog.String("cluster", i.ClusterID), slog.Int("managers", len(i.Managers)), slog.Int("nodes", len(i.NodeIDs)))
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

// Source answers what the swarm is now.
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
