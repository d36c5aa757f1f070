package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
)

// exitStopped is rotate's exit code when the roll stopped at a node.
const exitStopped = 3

func newRotateCmd(g *Globals) *cobra.Command {
	var (
		groups    []string
		image     string
		sitePath  string
		timeout   time.Duration
		drainWait time.Duration
		dryRun    bool
		allowLoss bool
	)
	cmd := &cobra.Command{
		Use:   "rotate --group NAME --image BUILD | --site FILE",
		Short: "Roll a group's VMs onto a new image, one node at a time",
		Long: `rotate renews the fleet: every VM of the named groups boots a new build, one
node at a time, so the swarm keeps running. For each node, workers first,
then managers (the swarm leader last, never two managers down at once):

  1. drain it (docker node update --availability drain, through a manager),
     wait until the manager lists it drained, then until its swarm tasks
     have stopped and left it (Docker's drain only starts moving them: each
     gets its service's stop_grace_period and is started elsewhere), so the
     reset kills none of them: "waiting for 3 tasks to leave lab-w1";
  2. point its VM at the new build (what the appliance's netboot serves);
  3. reset the VM;
  4. wait until its agent reports the new image version (NAME.version in
     the artifacts directory), swarm active with the same swarm node ID,
     and the manager lists it ready;
  5. activate it and wait until it is listed active.

Nodes already on the new version and active are skipped, so running the
same command again after a failure or a crash resumes where it stopped.
A node that is not back within --timeout stops the roll; it stays drained
and the message says what to do. Tasks still on a drained node after
--drain-timeout (default 5m, counted within --timeout) stop the roll before
the reset, the node left drained: see them with docker node ps NODE, give
them longer with --drain-timeout, or move them yourself (docker service
update --stop-grace-period, docker service scale), then run the same
command again. A manager whose swarmboot-agent is too old to count tasks
is not waited for: the progress says the tasks could not be counted. A manager whose reboot would cost the
swarm its raft quorum (a single manager, or one of three with another
down) is refused unless --allow-quorum-loss.

The roll runs inside the appliance ("swarmboot appliance run", which
receives the heartbeats); this command starts it over the admin socket
(<data-dir>/admin.sock: root or the appliance's user) and prints its
progress. Interrupting this command does not stop the roll: follow it
with "swarmboot rotate status". Its steps are also on each machine's
timeline ("swarmboot events MAC", kind rotate).

A netbooted VM (boot: pxe) boots the new build from the appliance at
step 2. For an iso-boot VM (boot: iso) step 2 pushes the build's ISO
(NAME.iso beside its artifacts) to the site's datastore and points the VM's
CD-ROM at it; that needs the appliance's vCenter (appliance run --site).
See docs/rotate.md.

--group takes a group name (with --image) or GROUP=BUILD; repeat it for
several groups. --site rolls every group of the site file onto its group's
image: (edit the file to name the new build first); a group whose image is
an ISO file rather than a build is skipped with a note.

Exit status: 0 when every node is on the new image, 3 when the roll
stopped at a node, 1 when it was refused.

Examples:
  swarmboot build -f linuxkit/worker.yml -o out/ --name worker-2027q1
  swarmboot rotate --group workers --image worker-2027q1 --dry-run
  swarmboot rotate --group workers --image worker-2027q1
  swarmboot rotate --group workers=worker-2027q1 --group managers=manager-2027q1 --timeout 20m
  swarmboot rotate --group workers --image worker-2027q1 --drain-timeout 10m
  swarmboot rotate --site swarmboot.yml
  swarmboot rotate status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := rotateRequest(g, groups, image, sitePath)
			if err != nil {
				return err
			}
			if timeout > 0 {
				req.Timeout = timeout.String()
			}
			if drainWait > 0 {
				req.DrainTimeout = drainWait.String()
			}
			req.AllowQuorumLoss = allowLoss
			c, err := runningAppliance(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer c.CloseIdle()
			if dryRun {
				lines, err := c.PlanRotation(cmd.Context(), req)
				if err != nil {
					return err // the appliance's words: "rotate: refused: …"
				}
				fmt.Fprintln(g.Stdout, "Dry run: nothing is changed. The roll would go, one node at a time:")
				for _, l := range lines {
					fmt.Fprintln(g.Stdout, "  "+l)
				}
				return nil
			}
			return followRoll(cmd.Context(), g, c, req)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&groups, "group", nil, "group to roll: NAME (with --image) or NAME=BUILD; repeat for several")
	f.StringVar(&image, "image", "", "the build to roll the --group groups onto (swarmboot build --name)")
	f.StringVarP(&sitePath, "site", "s", "", "roll every group of this site file onto its image:")
	f.DurationVar(&timeout, "timeout", 0, "time each node has to get through its roll (default 15m)")
	f.DurationVar(&drainWait, "drain-timeout", 0, "time a drained node's swarm tasks have to stop and leave it before its reset (default 5m)")
	f.BoolVar(&dryRun, "dry-run", false, "print the order and what would happen to each node; change nothing")
	f.BoolVar(&allowLoss, "allow-quorum-loss", false, "roll a manager even when the swarm loses its raft quorum while it reboots (single-manager swarms)")
	cmd.AddCommand(newRotateStatusCmd(g))
	return cmd
}

// rotateRequest builds the roll from the flags.
func rotateRequest(g *Globals, groups []string, image, sitePath string) (admin.RotateRequest, error) {
	var req admin.RotateRequest
	if sitePath != "" {
		if len(groups) > 0 || image != "" {
			return req, errors.New("give --site, or --group (with --image), not both")
		}
		st, err := site.Load(sitePath)
		if err != nil {
			return req, err
		}
		for _, grp := range st.Groups {
			switch {
			case grp.Boot == "iso" && !site.IsBuildName(grp.Image):
				fmt.Fprintf(g.Stderr, "skipping group %s (%s:%d): its image %s is a file, not a build: a roll needs a build name (swarmboot build --name NAME) whose NAME.iso and NAME.version it can use\n",
					grp.Name, sitePath, grp.Line, grp.Image)
			case !site.IsBuildName(grp.Image):
				return req, fmt.Errorf("%s:%d: group %s has no build name as its image (%q): set image: to the build to roll onto (swarmboot build --name NAME)", sitePath, grp.Line, grp.Name, grp.Image)
			default:
				req.Groups = append(req.Groups, admin.RotateGroup{Group: grp.Name, Image: grp.Image})
			}
		}
		if len(req.Groups) == 0 {
			return req, fmt.Errorf("%s: no group with a build as its image to roll", sitePath)
		}
		return req, nil
	}
	if len(groups) == 0 {
		return req, errors.New("name what to roll: --group NAME --image BUILD, --group NAME=BUILD, or --site FILE")
	}
	for _, grp := range groups {
		name, img, ok := strings.Cut(grp, "=")
		if !ok {
			img = image
		}
		if name == "" || img == "" {
			return req, fmt.Errorf("--group %q: give the build to roll it onto: --group %s --image BUILD, or --group %s=BUILD", grp, name, name)
		}
		req.Groups = append(req.Groups, admin.RotateGroup{Group: name, Image: img})
	}
	return req, nil
}

// runningAppliance is the admin client of the appliance running on the
// data dir, or an error saying a roll needs one.
func runningAppliance(ctx context.Context, g *Globals) (*admin.Client, error) {
	c := admin.NewClient(admin.SocketPath(g.DataDir))
	err := c.Ping(ctx)
	if errors.Is(err, admin.ErrNotRunning) {
		return nil, fmt.Errorf("rotate needs the running appliance (it waits for the nodes' heartbeats), but nothing answers on %s: start swarmboot appliance run with this --data-dir", c.Socket)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// followRoll starts the roll and prints its progress until it ends.
func followRoll(ctx context.Context, g *Globals, c *admin.Client, req admin.RotateRequest) error {
	p := newRollPrinter(g.Stdout, Terminal(g.Stdout))
	defer p.close()
	end, err := c.Rotate(ctx, req, p.line)
	p.close()
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(g.Stderr, "Stopped following; the roll goes on in the appliance: swarmboot rotate status")
		return &ExitError{Code: 130}
	}
	if err != nil {
		return err
	}
	if end.State != store.RotationDone {
		msg := end.Error
		if msg == "" {
			msg = end.Message
		}
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rotate %s: %s", end.State, strings.TrimPrefix(msg, "rotate: stopped: "))}
	}
	fmt.Fprintf(g.Stdout, "Roll done: %s.\n", end.Message)
	return nil
}

// rollPrinter prints progress lines: plain lines, or on a terminal
// aligned ones with a ticking "waiting" line under them.
type rollPrinter struct {
	w    io.Writer
	term bool

	mu      sync.Mutex
	last    admin.RotateLine
	since   time.Time
	waiting string // the last "wait" line's message, for the ticker
	stop    chan struct{}
	stopped bool
}

func newRollPrinter(w io.Writer, term bool) *rollPrinter {
	p := &rollPrinter{w: w, term: term, stop: make(chan struct{})}
	if term {
		go p.tick()
	}
	return p
}

func (p *rollPrinter) line(l admin.RotateLine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.End {
		return // followRoll says how it ended
	}
	if !p.term {
		who := l.VM
		if who == "" {
			who = "rotate"
		}
		fmt.Fprintf(p.w, "%s %s %s: %s\n", l.Time.UTC().Format(time.RFC3339), who, l.Step, l.Message)
		return
	}
	if l.Step == "wait" {
		p.waiting = l.Message // shown by the ticking line, not as a line of its own
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	mark := " "
	switch l.Step {
	case "done":
		mark = "✓"
	case "failed", "stopped":
		mark = "✗"
	case "skipped":
		mark = "-"
	}
	fmt.Fprintf(p.w, "%s %s %-14s %-9s %s\n", l.Time.Local().Format(time.TimeOnly), mark, l.VM, l.Step, l.Message)
	p.last, p.since, p.waiting = l, time.Now(), ""
}

// tick redraws "waiting" under the last line once a second.
func (p *rollPrinter) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		if p.last.VM != "" && p.last.Step != "done" && p.last.Step != "skipped" {
			msg := fmt.Sprintf("  … %s: %s for %s", p.last.VM, p.last.Step, time.Since(p.since).Round(time.Second))
			if p.waiting != "" {
				msg += "; " + p.waiting
			}
			fmt.Fprint(p.w, "\r\033[K"+msg)
		}
		p.mu.Unlock()
	}
}

func (p *rollPrinter) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.stop)
	if p.term {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func newRotateStatusCmd(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the latest roll: where each node stands, how it ended",
		Long: `status shows the latest roll as the appliance's store records it: when it
started, whether it is running, done, stopped at a node or interrupted (the
appliance stopped during it), what to do then, and each node's step in roll
order (pending, drain, image, reset, boot, activate, done, skipped, failed).

It works while the appliance runs (through its admin socket) and when it
does not (on the store directly).

Examples:
  swarmboot rotate status
  swarmboot rotate status --json | jq -r '.rotation.nodes[] | select(.step == "failed") | .vm'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := rotationStatus(cmd.Context(), g)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.Stdout, resp)
			}
			return printRotation(g, resp)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the roll as JSON")
	return cmd
}

// rotationStatus asks the running appliance, else reads the store.
func rotationStatus(ctx context.Context, g *Globals) (*admin.RotationResponse, error) {
	c := admin.NewClient(admin.SocketPath(g.DataDir))
	defer c.CloseIdle()
	err := c.Ping(ctx)
	if err == nil {
		return c.Rotation(ctx)
	}
	if !errors.Is(err, admin.ErrNotRunning) {
		return nil, err
	}
	path := store.DefaultPath(g.DataDir)
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		return nil, fmt.Errorf("no store at %s: no appliance has run with this --data-dir", path)
	}
	st, err := store.Open(path)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return (&admin.Ops{Store: st}).Rotation()
}

func printRotation(g *Globals, resp *admin.RotationResponse) error {
	r := resp.Rotation
	if r == nil {
		fmt.Fprintln(g.Stdout, "No roll has run (swarmboot rotate --help).")
		return nil
	}
	state := r.State
	if state == store.RotationRunning && !resp.Running {
		state = "running per the store, but no appliance runs it: interrupted (run the same swarmboot rotate again to resume)"
	}
	var gs []string
	for _, grp := range r.Groups {
		gs = append(gs, fmt.Sprintf("%s → %s (%s)", grp.Name, grp.Image, grp.Version))
	}
	fmt.Fprintf(g.Stdout, "Roll started %s: %s\n", stamp(r.Started), strings.Join(gs, ", "))
	fmt.Fprintf(g.Stdout, "State: %s", state)
	if !r.Ended.IsZero() {
		fmt.Fprintf(g.Stdout, " (ended %s)", stamp(r.Ended))
	}
	fmt.Fprintln(g.Stdout)
	if r.Message != "" {
		fmt.Fprintln(g.Stdout, r.Message)
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tGROUP\tROLE\tFROM\tTO\tSTEP\tNOTE")
	for _, n := range r.Nodes {
		note := n.Error
		if n.Drained && n.Step != "done" {
			note = strings.TrimSpace("drained " + note)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.VM, n.Group, n.Role, dash(n.From), n.To, n.Step, dash(note))
	}
	return tw.Flush()
}
