package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/fleet"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// fleetFlags are shared by push, plan, apply and destroy.
type fleetFlags struct {
	site     string
	simulate bool
	parallel int
}

func (ff *fleetFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	def := "swarmboot.yml"
	if v := os.Getenv("SWARMBOOT_SITE"); v != "" {
		def = v
	}
	f.StringVarP(&ff.site, "site", "s", def, "site file ($SWARMBOOT_SITE)")
	f.BoolVar(&ff.simulate, "simulate", false, "run against an in-process vCenter simulator (nothing real is touched)")
	f.IntVar(&ff.parallel, "parallel", fleet.DefaultParallel, "VM operations at once (1 with --simulate unless given)")
}

// session is a connected fleet; close releases everything.
type session struct {
	fleet *fleet.Fleet
	sim   *vsphere.Sim
	close func()
}

// simulatedSite is the embedded default `--simulate` uses without a site
// file: one manager booting an ISO (BIOS) and three PXE workers (UEFI),
// named like the seed's Terraform VMs.
const simulatedSite = `datacenter: DC0
datastore: LocalDS_0
resource_pool: DC0_C0/Resources
network: VM Network
folder: TERRAFORM/Linux/linuxkit-dev
groups:
  - name: managers
    pattern: tf-sw-m{n}
    count: 1
    role: manager
    cpus: 2
    memory: 4GiB
    disk: 10
    boot: iso
    image: docker.iso
  - name: workers
    pattern: tf-sw-{n}
    count: 3
    role: worker
    cpus: 2
    memory: 4GiB
    disk: 10
    firmware: efi
    boot: pxe
`

func (ff *fleetFlags) open(ctx context.Context, cmd *cobra.Command, g *Globals) (*session, error) {
	var closers []func()
	s := &session{close: func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}}
	fail := func(err error) (*session, error) { s.close(); return nil, err }
	var st *site.Site
	var err error
	dataDir := g.DataDir
	if ff.simulate {
		tmp, err := os.MkdirTemp("", "swarmboot-simulate-")
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { os.RemoveAll(tmp) })
		dataDir = tmp // the simulator forgets everything: so does its store
		if cmd.Flags().Changed("site") {
			st, err = site.Load(ff.site)
		} else {
			path := filepath.Join(tmp, "swarmboot.yml")
			os.WriteFile(filepath.Join(tmp, "docker.iso"), []byte("swarmboot simulated ISO\n"), 0o644)
			os.WriteFile(path, []byte(simulatedSite), 0o644)
			st, err = site.Load(path)
		}
		if err != nil {
			return fail(err)
		}
		sim, err := vsphere.StartSim()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, sim.Close)
		s.sim = sim
		def := sim.Site()
		st.VCenter = def.VCenter
		st.Datacenter, st.Datastore, st.ResourcePool, st.Network = def.Datacenter, def.Datastore, def.ResourcePool, def.Network
		fmt.Fprintf(g.Stderr, "Simulated vCenter at %s (govmomi simulator; nothing real is touched).\n", sim.VCenter.URL)
	} else if st, err = site.Load(ff.site); err != nil {
		return fail(err)
	}
	vs, err := vsphere.Connect(ctx, st.VCenter, g.Log)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { vs.Close(context.WithoutCancel(ctx)) })
	db, err := store.Open(store.DefaultPath(dataDir))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { db.Close() })
	par := ff.parallel
	if ff.simulate && !cmd.Flags().Changed("parallel") {
		par = 1 // govmomi's simulator is not safe for concurrent VM creates
	}
	s.fleet = &fleet.Fleet{Site: st, VS: vs, Store: db, Log: g.Log, Parallel: par,
		Progress: func(line string) { fmt.Fprintln(g.Stderr, "  "+line) }}
	return s, nil
}

func newPushCmd(g *Globals) *cobra.Command {
	var ff fleetFlags
	cmd := &cobra.Command{
		Use:   "push ISO",
		Short: "Upload an ISO to the site's datastore (content-addressed, skipped when present)",
		Long: `push uploads ISO to the datastore named in the site file as
[datastore] swarmboot/<name>-<sha256[:12]>.iso. A file of that name and size
already there is not uploaded again; a broken upload is retried, and a partial
upload never takes the final name. It prints the datastore path, ready for a
group's image: key.

Example:
  swarmboot build -f linuxkit/docker.yml -o out/
  swarmboot push out/docker.iso
  # [ssd-01] swarmboot/docker-3f9a0c1b2d4e.iso`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := ff.open(ctx, cmd, g)
			if err != nil {
				return err
			}
			defer s.close()
			p, err := s.fleet.VS.Resolve(ctx, s.fleet.Site)
			if err != nil {
				return err
			}
			var progress vsphere.Progress
			if Terminal(g.Stderr) {
				progress = func(sent, total int64) {
					fmt.Fprintf(g.Stderr, "\rpushing %s: %3d%% of %d MiB", filepath.Base(args[0]), sent*100/max(total, 1), total>>20)
					if sent == total {
						fmt.Fprintln(g.Stderr)
					}
				}
			}
			r, err := s.fleet.VS.Push(ctx, p.Datacenter, p.Datastore, args[0], progress)
			if err != nil {
				return err
			}
			if !r.Uploaded {
				fmt.Fprintf(g.Stderr, "already on the datastore (same name and size): not uploaded\n")
			}
			fmt.Fprintln(g.Stdout, r.Path)
			return nil
		},
	}
	ff.register(cmd)
	return cmd
}

func newPlanCmd(g *Globals) *cobra.Command {
	var ff fleetFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would create, change or delete in vCenter",
		Long: `plan compares the site file with vCenter and prints, per VM, what apply would
do and why, the way Terraform does: + create, ~ update in place (powered-off
VMs) or power on, - destroy (a shrinking group loses its highest-numbered VMs),
! needs a rotate (a running VM whose CPUs/memory changed, or a new image,
firmware or disk). It changes nothing.

Exit status: 0 no changes, 2 changes, 1 error (like terraform plan
-detailed-exitcode).

Example:
  export SWARMBOOT_VSPHERE_PASSWORD=...
  swarmboot plan --site /etc/swarmboot/swarmboot.yml
  swarmboot plan --simulate        # the embedded example on a simulated vCenter`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := ff.open(ctx, cmd, g)
			if err != nil {
				return err
			}
			defer s.close()
			p, err := s.fleet.Plan(ctx)
			if err != nil {
				return err
			}
			p.Write(g.Stdout)
			if len(p.Conflicts) > 0 {
				return fmt.Errorf("plan: %d VM name(s) taken by VMs swarmboot did not create (see above)", len(p.Conflicts))
			}
			if p.HasChanges() {
				return &ExitError{Code: 2}
			}
			return nil
		},
	}
	ff.register(cmd)
	return cmd
}

func newApplyCmd(g *Globals) *cobra.Command {
	var ff fleetFlags
	var wait bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create, change and delete VMs until vCenter matches the site file",
		Long: `apply converges vCenter onto the site file: it creates the (nested) folder,
pushes each group's ISO when the datastore lacks it, creates missing VMs a few
at a time (thin disk, vmxnet3 NIC, CD-ROM with the ISO or network-first boot,
firmware, a fresh one-time enrollment token in guestinfo whose hash alone is
stored), powers them on, reconfigures powered-off VMs, deletes the
highest-numbered VMs of a shrinking group, and records every VM's MAC and
UUIDs for bootserve. VMs swarmboot did not create are never touched.

It is safe to interrupt and run again: it picks up where it stopped, with no
duplicate and no leaked VM.

Example:
  swarmboot apply --wait           # then print each VM's guest IP (VMware Tools)
  swarmboot apply --simulate --wait  # the whole flow on a simulated vCenter`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := ff.open(ctx, cmd, g)
			if err != nil {
				return err
			}
			defer s.close()
			p, err := s.fleet.Plan(ctx)
			if err != nil {
				return err
			}
			p.Write(g.Stdout)
			// Apply even without changes: it also brings the store's records
			// (MACs, UUIDs for bootserve) in line with vCenter.
			fmt.Fprintln(g.Stderr, "Applying:")
			// The simulated guests start only once apply's creates are done:
			// the simulator races with itself when read during a create.
			r, err := s.fleet.Apply(ctx, p, fleet.ApplyOptions{Wait: wait && s.sim == nil})
			if err == nil && wait && s.sim != nil {
				gctx, cancel := context.WithCancel(ctx)
				defer cancel()
				s.sim.StartGuests(gctx, s.fleet.VS)
				r.IPs, err = s.fleet.WaitIPs(ctx, p.Placement)
			}
			if r != nil {
				fmt.Fprintf(g.Stdout, "\nApply complete: %d added, %d changed, %d destroyed.\n", len(r.Created), len(r.Updated)+len(r.PoweredOn), len(r.Deleted))
				if len(r.Rotate) > 0 {
					fmt.Fprintf(g.Stdout, "Not changed (need a rotate): %s\n", strings.Join(r.Rotate, ", "))
				}
				if len(r.IPs) > 0 {
					writeIPs(g.Stdout, r.IPs)
				}
			}
			return err
		},
	}
	ff.register(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for every VM's guest IP and print them")
	return cmd
}

// writeIPs prints guest IPs like the seed's Terraform output.
func writeIPs(w io.Writer, ips map[string]string) {
	names := make([]string, 0, len(ips))
	for n := range ips {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\nOutputs:\n\ninstance_ips = {")
	for _, n := range names {
		fmt.Fprintf(w, "  %q = %q\n", n, ips[n])
	}
	fmt.Fprintln(w, "}")
}

func newDestroyCmd(g *Globals) *cobra.Command {
	var ff fleetFlags
	var groups []string
	var yes, dry, force bool
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "destroy [VM...]",
		Short: "Drain, remove and delete VMs swarmboot created",
		Long: `destroy deletes the named VMs, the VMs of --group, or (with neither) every
VM swarmboot created in the site's folder, and removes their records and
enrollment tokens. VMs swarmboot did not create are refused. It lists what
it would do to each VM and its swarm node and refuses to go on without --yes
(--dry-run: only list).

With the appliance running (something answers on <data-dir>/admin.sock),
the appliance does it, workers first and managers last: per VM it drains
the swarm node through a manager (up to --drain-timeout for its tasks to
leave), powers off and deletes the VM, then revokes the node's certificate
and removes its swarm node (docker node rm --force through a manager). It
refuses to destroy the last manager(s) of a swarm whose workers stay,
unless --force.

With the appliance stopped, destroy works on the store and vCenter
directly: no manager can be asked, so each swarm node stays listed "down";
destroy revokes the node's certificate (a restored VM cannot come back) and
prints the docker node rm --force ID to run on a manager.

Example:
  swarmboot destroy --group workers --dry-run   # show what would go
  swarmboot destroy --group workers --yes
  swarmboot destroy tf-sw-3 --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			req := admin.DestroyRequest{Groups: groups, Names: args, Force: force}
			if drain > 0 {
				req.DrainTimeout = drain.String()
			}
			if !ff.simulate {
				c := admin.NewClient(admin.SocketPath(g.DataDir))
				err := c.Ping(ctx)
				if err == nil {
					defer c.CloseIdle()
					if cmd.Flags().Changed("site") {
						fmt.Fprintf(g.Stderr, "The appliance is running (%s): it destroys in the site it runs with; --site is not used.\n", c.Socket)
					}
					return destroyOnline(ctx, g, c, req, dry, yes)
				}
				if !errors.Is(err, admin.ErrNotRunning) {
					return err
				}
			}
			s, err := ff.open(ctx, cmd, g)
			if err != nil {
				return err
			}
			defer s.close()
			return destroyOffline(ctx, g, s.fleet, req, dry, yes)
		},
	}
	ff.register(cmd)
	cmd.Flags().StringSliceVar(&groups, "group", nil, "destroy the VMs of this group (repeatable)")
	cmd.Flags().BoolVar(&yes, "yes", false, "really delete")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only list what would happen to each VM and its swarm node")
	cmd.Flags().BoolVar(&force, "force", false, "also destroy the swarm's last manager(s) while workers stay")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 0, "how long a swarm node's drain may take before its VM goes anyway (running appliance; default 2m)")
	return cmd
}

func refuseWithoutYes(n int) error {
	return errors.New("destroy: refusing to delete " + fmt.Sprint(n) + " VM(s) without --yes; check the list above and run again with --yes")
}

// destroyOnline has the running appliance destroy the VMs, printing its
// progress lines.
func destroyOnline(ctx context.Context, g *Globals, c *admin.Client, req admin.DestroyRequest, dry, yes bool) error {
	lines, err := c.PlanDestroy(ctx, req)
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		fmt.Fprintln(g.Stdout, "Nothing to destroy.")
		return nil
	}
	for _, l := range lines {
		fmt.Fprintln(g.Stdout, "  "+l)
	}
	if dry {
		return nil
	}
	if !yes {
		return refuseWithoutYes(len(lines))
	}
	end, err := c.Destroy(ctx, req, func(l admin.DestroyLine) {
		if !l.End {
			fmt.Fprintf(g.Stdout, "%s %s: %s\n", l.VM, l.Step, l.Message)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "Destroy complete: %s.\n", end.Message)
	if end.Error != "" {
		return errors.New("destroy: " + end.Error)
	}
	return nil
}

// destroyOffline deletes the VMs without the appliance: their swarm
// nodes stay (no manager to ask), their certificates are revoked in the
// store, and the command to remove each swarm node is printed.
func destroyOffline(ctx context.Context, g *Globals, f *fleet.Fleet, req admin.DestroyRequest, dry, yes bool) error {
	vms, err := f.Targets(ctx, fleet.Selection{Groups: req.Groups, Names: req.Names})
	if err != nil {
		return err
	}
	if len(vms) == 0 {
		fmt.Fprintln(g.Stdout, "Nothing to destroy.")
		return nil
	}
	members, err := fleet.Members(f.Store, nil)
	if err != nil {
		return err
	}
	if err := fleet.CheckManagers(vms, members, req.Force); err != nil {
		return err
	}
	fleet.DestroyOrder(vms, members, "")
	for _, vm := range vms {
		fmt.Fprintf(g.Stdout, "  - vm %q (group %s, %s): power off and delete; %s\n", vm.Name, vm.Group, vm.PowerState,
			fleet.SwarmPlan(vm, members, false, false))
	}
	if dry {
		return nil
	}
	if !yes {
		return refuseWithoutYes(len(vms))
	}
	names, derr := f.Destroy(ctx, vms)
	ops := &admin.Ops{Store: f.Store}
	for _, n := range names {
		m, ok := members[n]
		if !ok || m.Revoked {
			continue
		}
		r, err := ops.Revoke(ctx, m.Node)
		if err != nil {
			fmt.Fprintf(g.Stderr, "%s: the certificate of node %s is NOT revoked: %v; run swarmboot node revoke %s\n", n, m.Node, err, m.Node)
			continue
		}
		note := r.SwarmNote
		if m.NodeID != "" {
			note = fmt.Sprintf("swarm node %s stays in the swarm (listed down): run on a manager: docker node rm --force %s", m.NodeID, m.NodeID)
		}
		fmt.Fprintf(g.Stdout, "%s: certificate of node %s revoked; %s\n", n, m.Node, note)
	}
	fmt.Fprintf(g.Stdout, "Destroy complete: %d destroyed.\n", len(names))
	return derr
}
