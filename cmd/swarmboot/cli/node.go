package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/store"
)

// adminOps are the day-2 operations: the running appliance answers them
// on its admin socket (admin.Client), else they run on the store directly
// (storeOps).
type adminOps interface {
	CreateToken(ctx context.Context, req admin.TokenRequest) (*admin.TokenResponse, error)
	Revoke(ctx context.Context, name string) (*admin.RevokeResponse, error)
	Nodes(ctx context.Context) ([]admin.Node, error)
}

// storeOps runs adminOps on a store no appliance serves.
type storeOps struct{ o *admin.Ops }

func (s storeOps) CreateToken(_ context.Context, req admin.TokenRequest) (*admin.TokenResponse, error) {
	return s.o.CreateToken(req)
}
func (s storeOps) Revoke(ctx context.Context, name string) (*admin.RevokeResponse, error) {
	return s.o.Revoke(ctx, name)
}
func (s storeOps) Nodes(context.Context) ([]admin.Node, error) { return s.o.Nodes() }

// openAdmin returns the running appliance's admin API when something
// answers on <data-dir>/admin.sock, else the store opened directly
// (create: make the store when there is none). Call the returned func when
// done.
func openAdmin(ctx context.Context, g *Globals, create bool) (adminOps, func(), error) {
	sock := admin.SocketPath(g.DataDir)
	c := admin.NewClient(sock)
	err := c.Ping(ctx)
	if err == nil {
		g.Log.Debug("using the running appliance", "admin_socket", sock)
		return c, c.CloseIdle, nil
	}
	if !errors.Is(err, admin.ErrNotRunning) {
		return nil, nil, err
	}
	path := store.DefaultPath(g.DataDir)
	if !create {
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("the appliance is not running (nothing answers on %s) and there is no store at %s: no appliance has run with this --data-dir", sock, path)
		}
	}
	st, err := store.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("the appliance is not running (nothing answers on %s) and the store cannot be opened: %w", sock, err)
	}
	g.Log.Debug("the appliance is not running: using the store directly", "store", path)
	return storeOps{&admin.Ops{Store: st}}, func() { st.Close() }, nil
}

func newNodeCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Enrolled nodes: list them, revoke one",
		Long: `Nodes are the machines whose agents enrolled with the appliance (they hold a
node certificate from its CA). These commands work while the appliance runs
(through its admin socket, <data-dir>/admin.sock, which only root and the
appliance's own user may use) and when it does not (on the store directly).`,
	}
	cmd.AddCommand(newNodeLsCmd(g), newNodeRevokeCmd(g))
	return cmd
}

func newNodeLsCmd(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the enrolled nodes",
		Long: `List every enrolled node: its name (the VM name, or mac-<hex> for machines
swarmboot did not create), VM, MACs, swarm role, the IMAGE version its last
report gave (NAME@digest, as swarmboot build printed it: what swarmboot
rotate waits for), when it enrolled, when it last heartbeated, whether it
is revoked, and the swarm state of its last report (state, role, node ID).
Nothing secret is shown.

Heartbeats reach the store about once a second, so LAST SEEN may lag by
that much. While the appliance runs the list comes from it (its admin
socket, <data-dir>/admin.sock); otherwise from the store directly.

Examples:
  swarmboot node ls
  swarmboot node ls --json | jq -r '.[] | select(.revoked == null) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ops, done, err := openAdmin(cmd.Context(), g, false)
			if err != nil {
				return err
			}
			defer done()
			nodes, err := ops.Nodes(cmd.Context())
			if err != nil {
				return fmt.Errorf("node ls: %w", err)
			}
			if asJSON {
				return printJSON(g.Stdout, nodes)
			}
			return printNodes(g, nodes)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}

// printJSON writes v as the --json output of node ls and rotate status:
// indented, one value.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printNodes(g *Globals, nodes []admin.Node) error {
	if len(nodes) == 0 {
		fmt.Fprintln(g.Stderr, "no enrolled nodes")
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVM\tMAC\tROLE\tIMAGE\tENROLLED\tLAST SEEN\tREVOKED\tSWARM")
	for _, n := range nodes {
		sw := n.Swarm.State
		if sw == "" {
			sw = "no report"
		}
		if n.Swarm.Role != "" {
			sw += " " + n.Swarm.Role
		}
		if n.Swarm.NodeID != "" {
			sw += " " + n.Swarm.NodeID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, dash(n.VM), dash(strings.Join(n.MACs, ",")), n.Role,
			dash(n.Image), stamp(n.Enrolled), stamp(n.LastSeen), stamp(n.Revoked), sw)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func newNodeRevokeCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a node's certificate (a lost or compromised machine)",
		Long: `Revoke the node's certificate at once. What happens then:

  - the agent API refuses the node's next call (heartbeat, plan, renew)
    with 403 "node certificate refused: certificate revoked";
  - its spent enrollment token cannot enroll it again;
  - its agent, on that refusal, sets its certificate aside
    (node.pem.refused) and goes back to enrolling: it keeps its key and
    waits until it finds a new, unspent token (guestinfo, kernel line or
    /etc/swarmboot/token). A new token from "swarmboot token create"
    enrolls it again (the same node name for the same VM or MAC);
  - its swarm node (the ID of its last report) is taken out of the Docker
    swarm (docker node rm --force) by a manager, waiting up to 20 s. The
    last line printed says how that went: removed, not in the swarm, or
    why it stays and the docker node rm --force ID to run on a manager
    (always so when the appliance is not running: no manager is asked).

Revoking does not power the machine off or delete its VM (swarmboot
destroy does). A node revoked before is left as it is.

Works while the appliance runs (through its admin socket) and when it does
not (the store records the revocation; the appliance refuses the node when
it starts).

Examples:
  swarmboot node ls
  swarmboot node revoke worker-07
    node worker-07 revoked at 2026-11-26 06:10:02Z: its next heartbeat is refused; …
    worker-07: swarm node k3q5x9y2a1b0 removed
  swarmboot node revoke mac-525400123456`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ops, done, err := openAdmin(cmd.Context(), g, false)
			if err != nil {
				return err
			}
			defer done()
			r, err := ops.Revoke(cmd.Context(), name)
			if errors.Is(err, admin.ErrNoNode) {
				return fmt.Errorf("no node %s: see swarmboot node ls", name)
			}
			if err != nil {
				return fmt.Errorf("node revoke %s: %w", name, err)
			}
			if r.Already {
				fmt.Fprintf(g.Stdout, "node %s was already revoked at %s\n", r.Name, stamp(r.Revoked))
				return nil
			}
			fmt.Fprintf(g.Stdout, "node %s revoked at %s: its next heartbeat is refused; its agent enrolls again only with a new token (swarmboot token create)\n",
				r.Name, stamp(r.Revoked))
			if r.SwarmNote != "" {
				fmt.Fprintf(g.Stdout, "%s: %s\n", r.Name, r.SwarmNote)
			}
			return nil
		},
	}
}
