package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// offline is a daemon that is never run: the Booter, tokens and the
// mirror are tested without the network.
func offline(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	data, artifacts, ipxe := fixture(t)
	cfg.DataDir, cfg.Artifacts = data, artifacts
	cfg.Boot.DHCP, cfg.Boot.ServerIP, cfg.Boot.IPXEDir = dhcp.ModeOff, net.IPv4(127, 0, 0, 1), ipxe
	// A free port, not a fixed one: tests that go on to Listen run in
	// parallel and would otherwise collide on the same address.
	cfg.Boot.HTTPAddr, cfg.Boot.TFTPAddr = bootservetest.FreeAddr(t), "127.0.0.1:0"
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func putVM(t *testing.T, d *Daemon, vm store.VM) {
	t.Helper()
	if err := d.Store().Update(func(tx *store.Tx) error { return tx.PutVM(vm) }); err != nil {
		t.Fatal(err)
	}
}

// TestUnenrolled lists the VMs a netboot token is for: not an enrolled
// node, and not a revoked one (re-admitting it is a decision made by name).
func TestUnenrolled(t *testing.T) {
	t.Parallel()
	d := offline(t, Config{})
	for _, n := range []string{"w1", "w2", "w3"} {
		putVM(t, d, store.VM{Name: n, MAC: "52:54:00:00:01:0" + n[1:], Image: "lab"})
	}
	putVM(t, d, store.VM{Name: "nomac"})
	now := time.Now()
	err := d.Store().Update(func(tx *store.Tx) error {
		for _, n := range []string{"w2", "w3"} {
			if err := tx.PutNode(store.Node{Name: n, VM: n, Role: api.RoleWorker, Enrolled: now, KeyFingerprint: "key-" + n, CertSerial: "0" + n[1:]}); err != nil {
				return err
			}
		}
		return tx.RevokeNode("w3", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := d.Unenrolled()
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 1 || vms[0].Name != "w1" {
		t.Errorf("Unenrolled = %+v, want only w1 (w2 enrolled, w3 revoked, nomac has no MAC)", vms)
	}
}

func TestBooter(t *testing.T) {
	t.Parallel()
	d := offline(t, Config{})
	putVM(t, d, store.VM{Name: "w1", MAC: "52:54:00:00:00:01", Image: "lab"})
	putVM(t, d, store.VM{Name: "w2", MAC: "52:54:00:00:00:02", Image: "missing"})
	b := &booter{d: d}
	boot := func(mac string) (*bootserve.Boot, error) {
		hw, _ := net.ParseMAC(mac)
		return b.Boot(context.Background(), bootserve.Machine{MAC: hw})
	}

	got, err := boot("52:54:00:00:00:01")
	if err != nil || got.Kernel != "lab-kernel" || got.Cmdline != "console=ttyS0 quiet" || got.Args != "" {
		t.Fatalf("known VM without a token: %+v, %v", got, err)
	}
	if _, err := boot("52:54:00:00:00:02"); err == nil || !strings.Contains(err.Error(), "vm w2") {
		t.Errorf("VM whose image is missing: %v, want an error naming the VM", err)
	}
	if _, err := boot("52:54:00:00:00:99"); !errors.Is(err, bootserve.ErrUnknown) {
		t.Errorf("unknown MAC: %v, want ErrUnknown", err)
	}

	// Bare metal: a token alone makes a machine known; it boots the
	// default (here: the only) image with the token.
	tok, err := d.IssueToken("52-54-00-00-00-99", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err = boot("52:54:00:00:00:99")
	if err != nil || got.Args != TokenArg+"="+tok {
		t.Fatalf("bare metal with a token: %+v, %v", got, err)
	}
	// Expired tokens leave the kernel line.
	d.args.set("52:54:00:00:00:99", argEntry{token: tok, expires: time.Now().Add(-time.Second)})
	if _, err := boot("52:54:00:00:00:99"); !errors.Is(err, bootserve.ErrUnknown) {
		t.Errorf("bare metal after its token expired: %v, want ErrUnknown", err)
	}

	// A fallback Booter answers for machines the store does not know.
	b.fallback = bootserve.BooterFunc(func(context.Context, bootserve.Machine) (*bootserve.Boot, error) {
		return &bootserve.Boot{Name: "fallback", Kernel: "k"}, nil
	})
	if got, err := boot("52:54:00:00:00:98"); err != nil || got.Name != "fallback" {
		t.Errorf("fallback: %+v, %v", got, err)
	}
}

func TestIssueTokenRefusals(t *testing.T) {
	t.Parallel()
	d := offline(t, Config{})
	putVM(t, d, store.VM{Name: "nomac"})
	for who, want := range map[string]string{
		"ghost":                   "neither a MAC nor a VM",
		"nomac":                   "no MAC recorded",
		"00:00:00:00:fe:80:00:00": "not an Ethernet MAC",
	} {
		if _, err := d.IssueToken(who, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("IssueToken(%q) = %v, want %q", who, err, want)
		}
	}
}

func TestMirrorBothWaysOnce(t *testing.T) {
	t.Parallel()
	d := offline(t, Config{})
	mac := "52:54:00:00:00:07"
	hw, _ := net.ParseMAC(mac)
	putVM(t, d, store.VM{Name: "w7", MAC: mac})
	now := time.Now()
	d.tl.Record(timeline.Event{Time: now, MAC: hw, IP: net.IPv4(10, 77, 0, 7), Kind: timeline.DHCPAck, Detail: "lease"})
	d.tl.Record(timeline.Event{Time: now, MAC: hw, Kind: timeline.Script, Detail: "w7: lab"})
	d.tl.Record(timeline.Event{Time: now, MAC: hw, Kind: timeline.DHCPRelease}) // full mode's steps are boot steps too
	if err := d.Store().Update(func(tx *store.Tx) error {
		return tx.AppendEvent(store.Event{Time: now.Add(time.Second), MAC: mac, VM: "w7", Kind: string(timeline.Enroll), Detail: "node w7 enrolled"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.IssueToken(mac, time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 3 { // repeated passes copy nothing twice
		d.mirror.once()
	}
	st := timeline.Kinds(storeKinds(t, d.Store(), mac))
	want := []timeline.Kind{timeline.Enroll, timeline.Token, timeline.DHCPAck, timeline.Script, timeline.DHCPRelease}
	if !equalKinds(st, want) {
		t.Errorf("store events %v, want %v", st, want)
	}
	tl := timeline.Kinds(d.tl.Events(hw))
	want = []timeline.Kind{timeline.DHCPAck, timeline.Script, timeline.DHCPRelease, timeline.Enroll, timeline.Token}
	if !equalKinds(tl, want) {
		t.Errorf("timeline events %v, want %v", tl, want)
	}
	if d.args.get(mac, time.Now()) != "" {
		t.Error("a machine that enrolled keeps its kernel-line token")
	}
	// A token issued after an enrollment stays on the kernel line, even
	// when the mirror sees that enrollment only later.
	if _, err := d.IssueToken(mac, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := d.Store().Update(func(tx *store.Tx) error {
		return tx.AppendEvent(store.Event{Time: time.Now().Add(-time.Hour), MAC: mac, Kind: string(timeline.Enroll)})
	}); err != nil {
		t.Fatal(err)
	}
	d.mirror.once()
	if d.args.get(mac, time.Now()) == "" {
		t.Error("an older enrollment dropped a newer token")
	}
	// A new boot step after the first passes is copied once.
	d.tl.Record(timeline.Event{MAC: hw, Kind: timeline.Kernel, Detail: "lab-kernel"})
	d.mirror.once()
	d.mirror.once()
	if n := strings.Count(strings.Join(kindStrings(storeKinds(t, d.Store(), mac)), " "), "kernel"); n != 1 {
		t.Errorf("kernel event copied %d times, want 1", n)
	}
}

func equalKinds(a, b []timeline.Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func kindStrings(evs []timeline.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Kind)
	}
	return out
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func FuzzRedact(f *testing.F) {
	f.Add("console=ttyS0 swarmboot.token=abc quiet", "abc")
	f.Add("swarmboot.token=x\tswarmboot.token=y", "y")
	f.Fuzz(func(t *testing.T, cmdline, secret string) {
		if strings.TrimSpace(secret) == "" || strings.ContainsAny(secret, " \t\r\n\v\f\u0085\u00a0") || strings.Contains("swarmboot.token=<redacted>", secret) {
			return
		}
		line := cmdline + " " + TokenArg + "=" + secret
		out := Redact(line)
		if !strings.Contains(out, TokenArg+"=<redacted>") {
			t.Fatalf("Redact(%q) = %q: no redaction", line, out)
		}
		for _, f := range strings.Fields(out) {
			if strings.HasPrefix(f, TokenArg+"=") && f != TokenArg+"=<redacted>" {
				t.Fatalf("Redact(%q) left %q", line, f)
			}
		}
	})
}

// TestNewFailsCleanly: a New that fails releases the store (the next
// start is not told "in use by another swarmboot process") and says what
// to do.
func TestNewFailsCleanly(t *testing.T) {
	t.Parallel()
	data, artifacts, _ := fixture(t)
	unreachable := &site.Site{Datacenter: "DC0", Datastore: "ds", Network: "net",
		VCenter: site.VCenter{URL: "https://" + bootservetest.FreeAddr(t) + "/sdk", User: "u", Password: "p", Insecure: true}}
	for name, cfg := range map[string]Config{
		"no iPXE loaders": {Boot: bootserve.Config{IPXEDir: t.TempDir()}},
		"no vCenter":      {Boot: bootserve.Config{IPXEDir: filepath.Join(filepath.Dir(artifacts), "ipxe")}, Site: unreachable},
		"bad API URL":     {Boot: bootserve.Config{IPXEDir: filepath.Join(filepath.Dir(artifacts), "ipxe")}, APIURL: "http://x"},
	} {
		cfg.DataDir, cfg.Artifacts = data, artifacts
		cfg.Boot.DHCP, cfg.Boot.ServerIP, cfg.Boot.HTTPAddr = dhcp.ModeOff, net.IPv4(127, 0, 0, 1), "127.0.0.1:1"
		start := time.Now()
		d, err := New(cfg)
		t.Logf("%s: %v after %s", name, err, time.Since(start).Round(time.Millisecond))
		if err == nil {
			d.Close()
			t.Errorf("%s: New succeeded", name)
			continue
		}
		st, err := store.Open(store.DefaultPath(data))
		if err != nil {
			t.Fatalf("%s: store still held after a failed New: %v", name, err)
		}
		st.Close()
	}
}
