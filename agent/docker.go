package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// Docker is the local dockerd, reached through its socket. The API version
// is negotiated (Debian's docker.io 20.10 speaks 1.41).
type Docker struct {
	c *client.Client
	// AdvertiseAddr is the address other nodes reach this one at; empty
	// lets dockerd choose.
	AdvertiseAddr string
	// JoinTimeout bounds one join call before falling back to polling
	// docker info (default 20 s); PollFor bounds the polling (60 s).
	JoinTimeout, PollFor time.Duration
}

// NewDocker connects to host, e.g. "unix:///var/run/docker.sock".
func NewDocker(host string) (*Docker, error) {
	c, err := client.New(client.WithHost(host)) // negotiates the API version on first use
	if err != nil {
		return nil, fmt.Errorf("docker %s: %w", host, err)
	}
	return &Docker{c: c, JoinTimeout: 20 * time.Second, PollFor: 60 * time.Second}, nil
}

// Close releases the client.
func (d *Docker) Close() error { return d.c.Close() }

// Ping reports whether dockerd answers.
func (d *Docker) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := d.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	return err
}

// State reads docker info.
func (d *Docker) State(ctx context.Context) (api.DockerState, api.SwarmState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := d.c.Info(ctx, client.InfoOptions{})
	if err != nil {
		return api.DockerState{}, api.SwarmState{}, err
	}
	i := res.Info
	ds := api.DockerState{Reachable: true, Version: i.ServerVersion, APIVersion: d.c.ClientVersion(), RootDir: i.DockerRootDir, StorageDriver: i.Driver}
	s := i.Swarm
	ss := api.SwarmState{NodeID: s.NodeID, NodeAddr: s.NodeAddr, State: string(s.LocalNodeState), ControlAvailable: s.ControlAvailable, Error: s.Error}
	if s.LocalNodeState == swarm.LocalNodeStateActive {
		ss.Role = api.RoleWorker
		if s.ControlAvailable {
			ss.Role = api.RoleManager
		}
	}
	if s.Cluster != nil {
		ss.ClusterID = s.Cluster.ID
	}
	return ds, ss, nil
}

// redact removes secret from an error's text.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "<redacted>"))
}

// Apply carries out a plan; it is idempotent (already in the right state →
// nothing) and returns whether it changed anything.
func (d *Docker) Apply(ctx context.Context, p api.Plan) (bool, error) {
	_, st, err := d.State(ctx)
	if err != nil {
		return false, err
	}
	switch p.Action {
	case api.ActionNone, "":
		return false, nil
	case api.ActionInit:
		if st.State == string(swarm.LocalNodeStateActive) {
			return false, nil
		}
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_, err := d.c.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "0.0.0.0:2377", AdvertiseAddr: d.AdvertiseAddr})
		if err != nil {
			return false, fmt.Errorf("swarm init: %w", err)
		}
		return true, nil
	case api.ActionJoin:
		if st.State == string(swarm.LocalNodeStateActive) && (p.ClusterID == "" || st.ClusterID == "" || st.ClusterID == p.ClusterID) {
			return false, nil
		}
		if st.State == string(swarm.LocalNodeStatePending) {
			return true, d.poll(ctx)
		}
		return true, redact(d.join(ctx, p), p.JoinToken)
	case api.ActionLeaveRejoin:
		if st.State != string(swarm.LocalNodeStateInactive) {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := d.c.SwarmLeave(lctx, client.SwarmLeaveOptions{Force: true})
			cancel()
			if err != nil {
				return false, fmt.Errorf("swarm leave: %w", err)
			}
		}
		return true, redact(d.join(ctx, p), p.JoinToken)
	}
	return false, fmt.Errorf("plan action %q unknown to this agent: update the image", p.Action)
}

func (d *Docker) join(ctx context.Context, p api.Plan) error {
	if len(p.Managers) == 0 || p.JoinToken == "" {
		return errors.New("swarm join: plan has no manager address or join token")
	}
	jctx, cancel := context.WithTimeout(ctx, d.JoinTimeout)
	_, err := d.c.SwarmJoin(jctx, client.SwarmJoinOptions{ListenAddr: "0.0.0.0:2377", AdvertiseAddr: d.AdvertiseAddr, RemoteAddrs: p.Managers, JoinToken: p.JoinToken})
	cancel()
	if err == nil {
		return nil
	}
	// A join that timed out keeps going in the background in dockerd:
	// watch docker info instead of failing.
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout was reached") {
		return d.poll(ctx)
	}
	return fmt.Errorf("swarm join: %w", err)
}

// poll waits for the swarm state to become active.
func (d *Docker) poll(ctx context.Context) error {
	deadline := time.Now().Add(d.PollFor)
	for time.Now().Before(deadline) {
		_, st, err := d.State(ctx)
		if err == nil && st.State == string(swarm.LocalNodeStateActive) {
			return nil
		}
		if err == nil && st.State == string(swarm.LocalNodeStateError) {
			return fmt.Errorf("swarm join: %s", st.Error)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return errors.New("swarm join: node not active after polling docker info; will retry")
}

// Push reads what a manager gives the appliance: join tokens, managers,
// members (their IDs, and the node list as the Docker API shows it).
func (d *Docker) Push(ctx context.Context) (*api.ManagerPush, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sw, err := d.c.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return nil, err
	}
	nodes, err := d.c.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, err
	}
	// One task list for all nodes; when it fails the counts stay unknown
	// rather than costing the push (a roll then goes on without them).
	var tasks map[string]int
	if tl, err := d.c.TaskList(ctx, client.TaskListOptions{}); err == nil {
		tasks = taskCounts(tl.Items)
	}
	p := &api.ManagerPush{ClusterID: sw.Swarm.ID, Worker: sw.Swarm.JoinTokens.Worker, Manager: sw.Swarm.JoinTokens.Manager}
	for _, n := range nodes.Items {
		p.NodeIDs = append(p.NodeIDs, n.ID)
		if sn, ok := swarmNode(n, tasks); ok && len(p.Nodes) < api.MaxSwarmNodes {
			p.Nodes = append(p.Nodes, sn)
		}
		if n.ManagerStatus != nil {
			if _, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
				p.Managers = append(p.Managers, n.ManagerStatus.Addr)
			}
		}
	}
	return p, nil
}

// swarmNode is a Docker node as the appliance's API takes it. What the
// API would refuse is dropped rather than sent (one odd hostname must not
// cost the whole heartbeat): a state Docker adds later reads "unknown", a
// node with an unprintable or overlong optional field goes without its
// optional fields, and a node without a usable ID or role is skipped
// (ok false). tasks (nil: not counted) gives the node's task count.
func swarmNode(n swarm.Node, tasks map[string]int) (api.SwarmNode, bool) {
	sn := api.SwarmNode{ID: n.ID, Hostname: n.Description.Hostname, Role: string(n.Spec.Role), State: string(n.Status.State),
		Availability: string(n.Spec.Availability), Addr: n.Status.Addr, EngineVersion: n.Description.Engine.EngineVersion}
	if tasks != nil {
		sn.Tasks, sn.TasksKnown = min(tasks[n.ID], api.MaxNodeTasks), true
	}
	if n.ManagerStatus != nil {
		sn.Leader = n.ManagerStatus.Leader
	}
	switch sn.State {
	case api.NodeReady, api.NodeDown, api.NodeUnknown, api.NodeDisconnected:
	default:
		sn.State = api.NodeUnknown
	}
	if sn.Validate() != nil {
		sn.Hostname, sn.Addr, sn.EngineVersion, sn.Availability = "", "", "", ""
	}
	return sn, sn.Validate() == nil
}

// taskCounts counts, per node ID, the tasks still on that node: assigned
// to it and in a state api.TaskOnNode counts (running or stopping; the
// appliance counts an existing swarm's tasks by the same rule).
func taskCounts(tasks []swarm.Task) map[string]int {
	counts := map[string]int{}
	for _, t := range tasks {
		if t.NodeID != "" && api.TaskOnNode(string(t.Status.State)) {
			counts[t.NodeID]++
		}
	}
	return counts
}
