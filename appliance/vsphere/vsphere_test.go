package vsphere

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func startSim(t *testing.T) (*Sim, *Client) {
	t.Helper()
	sim, err := StartSim()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	ctx := context.Background()
	c, err := Connect(ctx, sim.VCenter, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	return sim, c
}

// simFolder is startSim with the site resolved and its folder made.
func simFolder(t *testing.T) (*Sim, *Client, *Placement, *object.Folder) {
	t.Helper()
	sim, c := startSim(t)
	ctx := context.Background()
	p, err := c.Resolve(ctx, sim.Site())
	if err != nil {
		t.Fatal(err)
	}
	folder, err := c.EnsureFolder(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return sim, c, p, folder
}

func TestConnectPinnedThumbprintAndLoginFaults(t *testing.T) {
	// Not parallel: simulators share package state.
	sim, _ := startSim(t)
	ctx := context.Background()

	bad := sim.VCenter
	bad.Password = "wrong"
	_, err := Connect(ctx, bad, nil)
	if !errors.Is(err, ErrLogin) {
		t.Fatalf("wrong password: err = %v, want ErrLogin", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, sim.VCenter.User) || !strings.Contains(msg, "SWARMBOOT_VSPHERE_PASSWORD") || strings.Contains(msg, "wrong") {
		t.Errorf("login error is not one clear line without the password: %q", msg)
	}

	pinned := sim.VCenter
	pinned.CA = ""
	c, err := Connect(ctx, pinned, nil)
	if err != nil {
		t.Fatalf("connect with the right pinned thumbprint: %v", err)
	}
	c.Close(ctx)
	pinned.Thumbprint = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33"
	if _, err := Connect(ctx, pinned, nil); err == nil {
		t.Fatal("connected with a wrong pinned thumbprint")
	} else if strings.Contains(err.Error(), "\n") {
		t.Errorf("multi-line error: %q", err)
	}

	noPin := sim.VCenter
	noPin.Thumbprint, noPin.CA = "", ""
	if _, err := Connect(ctx, noPin, nil); err == nil {
		t.Fatal("connected to a self-signed vCenter without a pin or insecure: true")
	}
	noPin.Insecure = true
	var logs bytes.Buffer
	c, err = Connect(ctx, noPin, testLogger(&logs))
	if err != nil {
		t.Fatalf("insecure connect: %v", err)
	}
	c.Close(ctx)
	if !strings.Contains(logs.String(), "INSECURE") || strings.Contains(logs.String(), sim.VCenter.Password) {
		t.Errorf("insecure mode not logged loudly, or password logged: %s", logs.String())
	}
}

func TestResolveListsWhatExists(t *testing.T) {
	// Not parallel: simulators share package state.
	sim, c := startSim(t)
	ctx := context.Background()
	s := sim.Site()
	s.Path = "swarmboot.yml"
	s.Datastore = "ssd-99"
	s.Network = "Nope"
	_, err := c.Resolve(ctx, s)
	if err == nil {
		t.Fatal("resolved a missing datastore")
	}
	for _, want := range []string{"swarmboot.yml", "ssd-99", "LocalDS_0", "Nope", "VM Network"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	s = sim.Site()
	s.Datacenter = "DC9"
	if _, err := c.Resolve(ctx, s); err == nil || !strings.Contains(err.Error(), "DC0") {
		t.Errorf("missing datacenter: %v", err)
	}
	p, err := c.Resolve(ctx, sim.Site())
	if err != nil {
		t.Fatal(err)
	}
	if f, err := c.Folder(ctx, p); err != nil || f != nil {
		t.Fatalf("folder before EnsureFolder = %v, %v", f, err)
	}
	f, err := c.EnsureFolder(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if f.InventoryPath != "/DC0/vm/TERRAFORM/Linux/linuxkit-dev" {
		t.Errorf("folder path = %s", f.InventoryPath)
	}
	if f2, err := c.EnsureFolder(ctx, p); err != nil || f2.Reference() != f.Reference() {
		t.Errorf("second EnsureFolder = %v, %v", f2, err)
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

// The upload hook is package-global: tests that use it do not run in parallel.
func TestPushDedupeRetryAndWrongSize(t *testing.T) {
	sim, c := startSim(t)
	ctx := context.Background()
	p, err := c.Resolve(ctx, sim.Site())
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "docker.iso")
	data := bytes.Repeat([]byte("swarmboot-iso "), 200000)
	os.WriteFile(iso, data, 0o644)

	fails := 1
	uploadHook = func(r io.Reader) io.Reader {
		if fails > 0 {
			fails--
			return &failingReader{r: r, after: 100000}
		}
		return r
	}
	t.Cleanup(func() { uploadHook = nil })
	var last int64
	res, err := c.Push(ctx, p.Datacenter, p.Datastore, iso, func(sent, total int64) { last = sent })
	if err != nil {
		t.Fatalf("push with one broken upload: %v", err)
	}
	if !res.Uploaded || fails != 0 || last != int64(len(data)) {
		t.Errorf("push = %+v, fails left %d, progress %d", res, fails, last)
	}
	if !strings.HasPrefix(res.Path, "[LocalDS_0] swarmboot/docker-") || !strings.HasSuffix(res.Path, ".iso") || len(res.File) != len("swarmboot/docker-")+12+4 {
		t.Errorf("path = %s", res.Path)
	}
	size, ok, err := c.statSize(ctx, p.Datastore, res.File)
	if err != nil || !ok || size != int64(len(data)) {
		t.Fatalf("stat after push: %d %v %v", size, ok, err)
	}
	if _, ok, _ := c.statSize(ctx, p.Datastore, "swarmboot/.docker.iso.part"); ok {
		t.Error("temporary upload left behind")
	}

	res2, err := c.Push(ctx, p.Datacenter, p.Datastore, iso, nil)
	if err != nil || res2.Uploaded || res2.Path != res.Path {
		t.Errorf("second push = %+v, %v: want skipped", res2, err)
	}

	// A truncated file at the final name (someone else's broken copy) is replaced.
	short := p.Datastore.Upload(ctx, bytes.NewReader(data[:10]), res.File, nil)
	if short != nil {
		t.Fatal(short)
	}
	res3, err := c.Push(ctx, p.Datacenter, p.Datastore, iso, nil)
	if err != nil || !res3.Uploaded {
		t.Errorf("push over a wrong-size file = %+v, %v", res3, err)
	}

	// Every attempt broken: a clear error after 3 tries.
	fails = 5
	other := filepath.Join(t.TempDir(), "other.iso")
	os.WriteFile(other, data[:200000], 0o644)
	_, err = c.Push(ctx, p.Datacenter, p.Datastore, other, nil)
	if err == nil || !strings.Contains(err.Error(), "upload ISO [LocalDS_0] swarmboot/other-") || fails != 2 {
		t.Errorf("push that always breaks: %v (fails left %d)", err, fails)
	}
}

func readConfig(t *testing.T, c *Client, vm *VM) *mo.VirtualMachine {
	t.Helper()
	var m mo.VirtualMachine
	if err := c.Object(vm).Properties(context.Background(), vm.Ref, []string{"config"}, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func extra(m *mo.VirtualMachine, key string) string {
	for _, o := range m.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov.Key == key {
			s, _ := ov.Value.(string)
			return s
		}
	}
	return ""
}

func TestCreateVMBootModesAndFirmwares(t *testing.T) {
	// Not parallel: simulators share package state.
	sim, c, p, folder := simFolder(t)
	ctx := context.Background()
	for _, tc := range []struct{ boot, fw string }{{"iso", "bios"}, {"iso", "efi"}, {"pxe", "bios"}, {"pxe", "efi"}} {
		name := "tf-sw-" + tc.boot + "-" + tc.fw
		spec := VMSpec{Name: name, Group: "workers", Role: "worker", Image: "docker", Index: 1, CPUs: 2, MemoryMiB: 1024,
			DiskGiB: 10, GuestID: "otherLinux64Guest", Firmware: tc.fw, Boot: tc.boot, ISO: "[LocalDS_0] docker/docker.iso",
			Token: "tok-" + name, BIOSUUID: uuid.NewString(), InstanceUUID: uuid.NewString()}
		vm, err := c.CreateVM(ctx, p, folder, spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := readConfig(t, c, vm)
		if m.Config.Firmware != tc.fw || vm.Firmware != tc.fw {
			t.Errorf("%s: firmware %s", name, m.Config.Firmware)
		}
		if m.Config.Uuid != spec.BIOSUUID || vm.BIOSUUID != spec.BIOSUUID || vm.InstanceUUID != spec.InstanceUUID {
			t.Errorf("%s: uuid %s / %s, want preset %s", name, m.Config.Uuid, vm.InstanceUUID, spec.BIOSUUID)
		}
		if m.Config.Hardware.NumCPU != 2 || m.Config.Hardware.MemoryMB != 1024 || m.Config.GuestId != "otherLinux64Guest" {
			t.Errorf("%s: hardware %+v", name, m.Config.Hardware)
		}
		devs := object.VirtualDeviceList(m.Config.Hardware.Device)
		nics := devs.SelectByType((*types.VirtualVmxnet3)(nil))
		if len(nics) != 1 || vm.MAC == "" {
			t.Errorf("%s: want one vmxnet3 NIC with a MAC, got %d (%s)", name, len(nics), vm.MAC)
		} else if b, ok := nics[0].GetVirtualDevice().Backing.(*types.VirtualEthernetCardNetworkBackingInfo); !ok || b.DeviceName != "VM Network" {
			t.Errorf("%s: NIC backing %#v", name, nics[0].GetVirtualDevice().Backing)
		}
		disks := devs.SelectByType((*types.VirtualDisk)(nil))
		if len(disks) != 1 {
			t.Fatalf("%s: %d disks", name, len(disks))
		}
		d := disks[0].(*types.VirtualDisk)
		if b := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); d.CapacityInKB != 10*1024*1024 || b.ThinProvisioned == nil || !*b.ThinProvisioned {
			t.Errorf("%s: disk %d KiB thin=%v", name, d.CapacityInKB, b.ThinProvisioned)
		}
		cds := devs.SelectByType((*types.VirtualCdrom)(nil))
		order := m.Config.BootOptions.BootOrder
		if len(order) < 1 || tc.boot == "pxe" && len(order) < 2 {
			t.Fatalf("%s: boot order %v", name, order)
		}
		switch tc.boot {
		case "iso":
			if len(cds) != 1 || vm.ISO != "[LocalDS_0] docker/docker.iso" {
				t.Errorf("%s: CD-ROM %d iso %q", name, len(cds), vm.ISO)
			}
			if _, ok := order[0].(*types.VirtualMachineBootOptionsBootableCdromDevice); !ok {
				t.Errorf("%s: first boot device %T, want CD-ROM", name, order[0])
			}
		case "pxe":
			if len(cds) != 0 {
				t.Errorf("%s: pxe VM has a CD-ROM", name)
			}
			e, ok := order[0].(*types.VirtualMachineBootOptionsBootableEthernetDevice)
			if !ok || e.DeviceKey != nics[0].GetVirtualDevice().Key {
				t.Errorf("%s: first boot device %#v, want the NIC", name, order[0])
			}
			if d, ok := order[1].(*types.VirtualMachineBootOptionsBootableDiskDevice); !ok || d.DeviceKey != disks[0].GetVirtualDevice().Key {
				t.Errorf("%s: second boot device %#v, want the disk", name, order[1])
			}
		}
		for k, want := range map[string]string{KeyManaged: "true", KeyGroup: "workers", KeyIndex: "1", KeyRole: "worker", KeyImage: "docker", KeyToken: "tok-" + name} {
			if got := extra(m, k); got != want {
				t.Errorf("%s: extraConfig %s = %q, want %q", name, k, got, want)
			}
		}
		if err := c.ClearToken(ctx, vm); err != nil {
			t.Fatal(err)
		}
		if got := extra(readConfig(t, c, vm), KeyToken); got != "" {
			t.Errorf("%s: token not cleared: %q", name, got)
		}
	}
	vms, err := c.List(ctx, folder)
	if err != nil || len(vms) != 4 || !vms[0].Managed || vms[0].Group != "workers" {
		t.Fatalf("List = %+v, %v", vms, err)
	}
	// Power, reconfigure, IP, destroy.
	vm := &vms[0]
	if err := c.Reconfigure(ctx, vm, 4, 2048); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx, vm); err != nil {
		t.Fatalf("power on twice: %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		task, _ := c.Object(vm).Reconfigure(ctx, types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: "SET.guest.ipAddress", Value: "192.0.2.10"}}})
		task.Wait(ctx)
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ip, err := c.WaitIP(wctx, vm); err != nil || ip != "192.0.2.10" {
		t.Errorf("WaitIP = %q, %v", ip, err)
	}
	got, _ := c.Get(ctx, vm.Ref)
	if got.CPUs != 4 || got.MemoryMiB != 2048 || got.PowerState != "poweredOn" || got.IP != "192.0.2.10" {
		t.Errorf("after reconfigure/power on: %+v", got)
	}
	for i := range vms {
		if err := c.Destroy(ctx, &vms[i]); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := c.List(ctx, folder); len(left) != 0 {
		t.Errorf("%d VMs left after destroy", len(left))
	}
	_ = sim
}

func TestFaultsBecomeOneClearLine(t *testing.T) {
	// Not parallel: simulators share package state.
	sim, c, p, folder := simFolder(t)
	ctx := context.Background()
	spec := VMSpec{Name: "tf-sw-1", Group: "w", Index: 1, CPUs: 1, MemoryMiB: 512, DiskGiB: 1, GuestID: "otherLinux64Guest", Firmware: "bios", Boot: "pxe", Token: "secret-token-value"}
	cases := []struct {
		fault types.BaseMethodFault
		kind  error
		want  string
	}{
		{&types.NoDiskSpace{Datastore: "LocalDS_0"}, ErrNoSpace, "free space on the datastore"},
		{&types.NoPermission{}, ErrPermission, "grant the vCenter user"},
		{&types.ManagedObjectNotFound{}, ErrNotFound, "swarmboot plan"},
		{&types.DuplicateName{Name: "tf-sw-1"}, ErrExists, "already uses that name"},
	}
	for _, tc := range cases {
		sim.ClearFaults()
		sim.AddFault(&simulator.FaultInjectionRule{MethodName: "CreateVM_Task", ObjectType: "*", ObjectName: "*", Probability: 1,
			FaultType: simulator.FaultTypeCustom, Fault: tc.fault, Enabled: true})
		_, err := c.CreateVM(ctx, p, folder, spec)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%T: err = %v, want %v", tc.fault, err, tc.kind)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, "VM tf-sw-1") || !strings.Contains(msg, tc.want) || strings.Contains(msg, spec.Token) {
			t.Errorf("%T: message %q: want one line naming VM tf-sw-1 and %q", tc.fault, msg, tc.want)
		}
	}
	sim.ClearFaults()
	tctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	if _, err := c.CreateVM(tctx, p, folder, spec); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("timeout: %v", err)
	}
}
