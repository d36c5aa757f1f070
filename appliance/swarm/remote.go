package swarm

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	swarmtypes "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// Remote reads the swarm from an existing manager's Docker API (the site
// file's case: workers join a swarm that swarmboot did not create). The
// answer is cached for TTL.
type Remote struct {
	Client *client.Client
	TTL    time.Duration // default 10 s

	mu         sync.Mutex
	cached     Info
	refreshing bool
}

// NewRemote connects to a manager's Docker API: host is "tcp://HOST:2376"
// (with caFile, certFile, keyFile for TLS) or "unix:///path/docker.sock".
// The API version is negotiated (Debian's docker.io 20.10 speaks 1.41).
// opts are applied last (tests pass a dialer).
func NewRemote(host, caFile, certFile, keyFile string, opts ...client.Opt) (*Remote, error) {
	all := []client.Opt{client.WithHost(host)} // negotiates the API version on first use
	if caFile != "" || certFile != "" {
		all = append(all, client.WithTLSClientConfig(caFile, certFile, keyFile))
	}
	c, err := client.New(append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("swarm manager %s: %w", host, err)
	}
	return &Remote{Client: c}, nil
}

// Swarm asks the manager for tokens, managers and members (IDs and the
// node list; Info.From is the Docker API's URL). While one
// caller refreshes an expired answer, the others get the previous one
// rather than wait on the manager.
func (r *Remote) Swarm(ctx context.Context) (Info, error) {
	ttl := r.TTL
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	r.mu.Lock()
	cached, fresh := r.cached, !r.cached.At.IsZero() && time.Since(r.cached.At) < ttl
	if fresh || (r.refreshing && !cached.At.IsZero()) {
		r.mu.Unlock()
		return cached, nil
	}
	r.refreshing = true
	r.mu.Unlock()
	i, err := r.fetch(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshing = false
	if err != nil {
		return Info{}, err
	}
	r.cached = i
	return i, nil
}

func (r *Remote) fetch(ctx context.Context) (Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sw, err := r.Client.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("swarm manager %s: inspect: %w (is it a swarm manager?)", r.Client.DaemonHost(), err)
	}
	nodes, err := r.Client.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("swarm manager %s: node list: %w", r.Client.DaemonHost(), err)
	}
	// One task list for all nodes, counted as a manager's agent counts
	// (api.TaskOnNode); when it fails the counts stay unknown rather than
	// costing the node list (a roll then goes on without them).
	var tasks map[string]int
	if tl, err := r.Client.TaskList(ctx, client.TaskListOptions{}); err == nil {
		tasks = map[string]int{}
		for _, t := range tl.Items {
			if t.NodeID != "" && api.TaskOnNode(string(t.Status.State)) {
				tasks[t.NodeID]++
			}
		}
	}
	i := Info{ClusterID: sw.Swarm.ID, Worker: sw.Swarm.JoinTokens.Worker, Manager: sw.Swarm.JoinTokens.Manager, NodeIDs: []string{},
		Nodes: []api.SwarmNode{}, From: r.Client.DaemonHost(), At: time.Now()}
	for _, n := range nodes.Items {
		i.NodeIDs = append(i.NodeIDs, n.ID)
		i.Nodes = append(i.Nodes, node(n, tasks))
		if n.ManagerStatus != nil && n.ManagerStatus.Addr != "" {
			if _, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
				i.Managers = append(i.Managers, n.ManagerStatus.Addr)
			}
		}
	}
	return i, nil
}

// node is a Docker node as api.SwarmNode. The manager's answer is taken
// as it is (this is a manager the site named, over TLS), except that
// text is cut to what a terminal can show safely. tasks (nil: not
// counted) gives the node's task count.
func node(n swarmtypes.Node, tasks map[string]int) api.SwarmNode {
	sn := api.SwarmNode{ID: printable(n.ID), Hostname: printable(n.Description.Hostname), Role: printable(string(n.Spec.Role)),
		State: printable(string(n.Status.State)), Availability: printable(string(n.Spec.Availability)), Addr: printable(n.Status.Addr),
		EngineVersion: printable(n.Description.Engine.EngineVersion)}
	if n.ManagerStatus != nil {
		sn.Leader = n.ManagerStatus.Leader
	}
	if tasks != nil {
		sn.Tasks, sn.TasksKnown = min(tasks[n.ID], api.MaxNodeTasks), true
	}
	return sn
}

// printable drops control characters and cuts s to 256 bytes.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}
