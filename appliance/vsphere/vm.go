package vsphere

import (
	"context"
	"fmt"
	"strconv"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// extraConfig keys swarmboot writes on the VMs it owns.
const (
	KeyManaged = "swarmboot.managed" // "true" on every VM swarmboot created
	KeyGroup   = "swarmboot.group"
	KeyIndex   = "swarmboot.index"
	KeyRole    = "swarmboot.role"
	KeyImage   = "swarmboot.image"
	KeyBoot    = "swarmboot.boot"            // iso | pxe
	KeyDisk    = "swarmboot.disk"            // GiB the disk was created with
	KeyToken   = "guestinfo.swarmboot.token" // one-time enrollment token; read by the agent
)

// VMSpec is a VM to create.
type VMSpec struct {
	Name, Group, Role, Image string
	Index                    int
	CPUs, MemoryMiB, DiskGiB int
	GuestID                  string
	Firmware                 string // bios | efi
	Boot                     string // iso | pxe
	ISO                      string // "[ds] path" for iso boot
	Token                    string // goes only into guestinfo, never logged
	BIOSUUID, InstanceUUID   string // chosen by the caller so records can precede the VM
}

// VM is a VM as observed in vCenter. List fills what plan needs without
// reading device lists (which dominate the cost of listing many VMs): MAC
// and ISO are then empty and DiskGiB comes from the swarmboot.disk marker;
// Get fills everything.
type VM struct {
	Ref                    types.ManagedObjectReference
	Name                   string
	Managed                bool // carries the swarmboot.managed marker
	Group, Role, Image     string
	Boot                   string // iso | pxe, from the swarmboot.boot marker
	Index                  int
	CPUs, MemoryMiB        int
	DiskGiB                int
	Firmware               string
	BootFirst              string // ethernet | cdrom | disk | ""
	ISO                    string // CD-ROM backing file, if any
	PowerState             string // poweredOn | poweredOff | suspended
	BIOSUUID, InstanceUUID string
	MAC, IP                string

	devices object.VirtualDeviceList
}

// Object is the govmomi handle of vm.
func (c *Client) Object(vm *VM) *object.VirtualMachine {
	o := object.NewVirtualMachine(c.VC, vm.Ref)
	return o
}

// CreateVM creates spec in folder on p (disk thin, vmxnet3 NIC on the
// network, CD-ROM with the ISO for iso boot, firmware, markers and token),
// sets the boot order (network first for pxe, CD-ROM first for iso) and
// returns the VM as vCenter now sees it. It does not power it on.
func (c *Client) CreateVM(ctx context.Context, p *Placement, folder *object.Folder, s VMSpec) (*VM, error) {
	return c.createVM(ctx, p, folder, s, c.wait, c.Get)
}

// CreateVM is Client.CreateVM with its task waits shared with the
// Waiter's other tasks.
func (w *Waiter) CreateVM(ctx context.Context, p *Placement, folder *object.Folder, s VMSpec) (*VM, error) {
	return w.c.createVM(ctx, p, folder, s, w.Wait, w.Get)
}

// SetBootOrder is Client.SetBootOrder with its task wait shared with the
// Waiter's other tasks.
func (w *Waiter) SetBootOrder(ctx context.Context, vm *VM, boot string) error {
	return w.c.setBootOrder(ctx, vm, boot, w.Wait)
}

type (
	waitFunc func(context.Context, *object.Task) (*types.TaskInfo, error)
	getFunc  func(context.Context, types.ManagedObjectReference) (*VM, error)
)

func (c *Client) createVM(ctx context.Context, p *Placement, folder *object.Folder, s VMSpec, wait waitFunc, get getFunc) (*VM, error) {
	obj := "VM " + s.Name
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return nil, err
	}
	devices = append(devices, scsi)
	disk := &types.VirtualDisk{
		VirtualDevice: types.VirtualDevice{
			Key: devices.NewKey(),
			Backing: &types.VirtualDiskFlatVer2BackingInfo{
				DiskMode:        string(types.VirtualDiskModePersistent),
				ThinProvisioned: types.NewBool(true),
			},
		},
		CapacityInKB: int64(s.DiskGiB) * 1024 * 1024,
	}
	devices.AssignController(disk, scsi.(types.BaseVirtualController))
	devices = append(devices, disk)
	backing, err := p.networkBacking(ctx)
	if err != nil {
		return nil, err
	}
	nic, err := devices.CreateEthernetCard("vmxnet3", backing)
	if err != nil {
		return nil, err
	}
	devices = append(devices, nic)
	if s.Boot == "iso" {
		ide, err := devices.CreateIDEController()
		if err != nil {
			return nil, err
		}
		devices = append(devices, ide)
		cd, err := devices.CreateCdrom(ide.(*types.VirtualIDEController))
		if err != nil {
			return nil, err
		}
		cd = devices.InsertIso(cd, s.ISO)
		cd.Connectable = &types.VirtualDeviceConnectInfo{StartConnected: true, AllowGuestControl: true, Connected: true}
		devices = append(devices, cd)
	}
	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return nil, err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:         s.Name,
		GuestId:      s.GuestID,
		NumCPUs:      int32(s.CPUs),
		MemoryMB:     int64(s.MemoryMiB),
		Firmware:     s.Firmware,
		Uuid:         s.BIOSUUID,
		InstanceUuid: s.InstanceUUID,
		Annotation:   "Managed by swarmboot (group " + s.Group + "). Changes here are undone by `swarmboot apply`.",
		DeviceChange: changes,
		Files:        &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", p.Datastore.Name())},
		ExtraConfig: []types.BaseOptionValue{
			&types.OptionValue{Key: KeyManaged, Value: "true"},
			&types.OptionValue{Key: KeyGroup, Value: s.Group},
			&types.OptionValue{Key: KeyIndex, Value: strconv.Itoa(s.Index)},
			&types.OptionValue{Key: KeyRole, Value: s.Role},
			&types.OptionValue{Key: KeyImage, Value: s.Image},
			&types.OptionValue{Key: KeyBoot, Value: s.Boot},
			&types.OptionValue{Key: KeyDisk, Value: strconv.Itoa(s.DiskGiB)},
			&types.OptionValue{Key: KeyToken, Value: s.Token},
		},
	}
	if s.Boot == "iso" {
		// The CD-ROM needs no device key, so it goes first in the create
		// itself, which saves a reconfigure task per VM. The disk is not
		// listed: it holds data (LinuxKit formats it) and is never booted;
		// past the list the firmware's own order applies anyway. Network
		// and disk entries need device keys, which exist only after the
		// create (vCenter does not map temporary keys in bootOptions).
		spec.BootOptions = &types.VirtualMachineBootOptions{BootOrder: []types.BaseVirtualMachineBootOptionsBootableDevice{
			&types.VirtualMachineBootOptionsBootableCdromDevice{}}}
	}
	task, err := folder.CreateVM(ctx, spec, p.Pool, nil)
	if err != nil {
		return nil, Explain(err, "create", obj)
	}
	info, err := wait(ctx, task)
	if err != nil {
		return nil, Explain(err, "create", obj)
	}
	if info == nil {
		return nil, Explain(context.Cause(ctx), "create", obj)
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		if ctx.Err() != nil {
			return nil, Explain(ctx.Err(), "create", obj)
		}
		return nil, Explain(fmt.Errorf("the CreateVM task returned no VM"), "create", obj)
	}
	vm, err := get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if s.Boot == "iso" && vm.BootFirst == "cdrom" {
		return vm, nil
	}
	if err := c.setBootOrder(ctx, vm, s.Boot, wait); err != nil {
		return vm, err
	}
	return vm, nil
}

// SetBootOrder puts the network first (pxe) or the CD-ROM first (iso),
// then the disk.
func (c *Client) SetBootOrder(ctx context.Context, vm *VM, boot string) error {
	return c.setBootOrder(ctx, vm, boot, c.wait)
}

func (c *Client) setBootOrder(ctx context.Context, vm *VM, boot string, wait waitFunc) error {
	o := c.Object(vm)
	devices := vm.devices
	if devices == nil {
		var err error
		if devices, err = o.Device(ctx); err != nil {
			return Explain(err, "read devices of", "VM "+vm.Name)
		}
	}
	first := "ethernet"
	if boot == "iso" {
		first = "cdrom"
	}
	opts := &types.VirtualMachineBootOptions{BootOrder: devices.BootOrder([]string{first, "disk"})}
	task, err := o.Reconfigure(ctx, types.VirtualMachineConfigSpec{BootOptions: opts})
	if err == nil {
		_, err = wait(ctx, task)
	}
	if err != nil {
		return Explain(err, "set boot order of", "VM "+vm.Name)
	}
	vm.BootFirst = first
	return nil
}

// listProps are the properties List reads; vmProps adds the devices for Get.
var (
	listProps = []string{"name", "config.extraConfig", "config.hardware.numCPU", "config.hardware.memoryMB",
		"config.uuid", "config.instanceUuid", "config.firmware", "config.bootOptions",
		"runtime.powerState", "guest.ipAddress"}
	vmProps = append([]string{"config.hardware.device"}, listProps...)
)

// Get reads one VM.
func (c *Client) Get(ctx context.Context, ref types.ManagedObjectReference) (*VM, error) {
	var m mo.VirtualMachine
	if err := object.NewVirtualMachine(c.VC, ref).Properties(ctx, ref, vmProps, &m); err != nil {
		return nil, Explain(err, "read", "VM "+ref.Value)
	}
	vm := fromMO(&m)
	return &vm, nil
}

func fromMO(m *mo.VirtualMachine) VM {
	vm := VM{Ref: m.Self, Name: m.Name, PowerState: string(m.Runtime.PowerState)}
	if m.Guest != nil {
		vm.IP = m.Guest.IpAddress
	}
	if m.Config == nil {
		return vm
	}
	vm.CPUs, vm.MemoryMiB = int(m.Config.Hardware.NumCPU), int(m.Config.Hardware.MemoryMB)
	vm.BIOSUUID, vm.InstanceUUID, vm.Firmware = m.Config.Uuid, m.Config.InstanceUuid, m.Config.Firmware
	for _, bov := range m.Config.ExtraConfig {
		ov := bov.GetOptionValue()
		v, _ := ov.Value.(string)
		switch ov.Key {
		case KeyManaged:
			vm.Managed = v == "true"
		case KeyGroup:
			vm.Group = v
		case KeyIndex:
			vm.Index, _ = strconv.Atoi(v)
		case KeyRole:
			vm.Role = v
		case KeyImage:
			vm.Image = v
		case KeyBoot:
			vm.Boot = v
		case KeyDisk:
			vm.DiskGiB, _ = strconv.Atoi(v)
		}
	}
	devices := object.VirtualDeviceList(m.Config.Hardware.Device)
	vm.devices = devices
	for _, d := range devices {
		switch d := d.(type) {
		case types.BaseVirtualEthernetCard:
			if vm.MAC == "" {
				vm.MAC = d.GetVirtualEthernetCard().MacAddress
			}
		case *types.VirtualDisk:
			if first := devices.SelectByType((*types.VirtualDisk)(nil)); first[0] == d {
				vm.DiskGiB = int(d.CapacityInKB / 1024 / 1024)
			}
		case *types.VirtualCdrom:
			if b, ok := d.Backing.(*types.VirtualCdromIsoBackingInfo); ok && vm.ISO == "" {
				vm.ISO = b.FileName
			}
		}
	}
	if m.Config.BootOptions != nil && len(m.Config.BootOptions.BootOrder) > 0 {
		switch m.Config.BootOptions.BootOrder[0].(type) {
		case *types.VirtualMachineBootOptionsBootableEthernetDevice:
			vm.BootFirst = "ethernet"
		case *types.VirtualMachineBootOptionsBootableCdromDevice:
			vm.BootFirst = "cdrom"
		case *types.VirtualMachineBootOptionsBootableDiskDevice:
			vm.BootFirst = "disk"
		}
	}
	return vm
}

// PowerOn powers vm on; already on is fine.
func (c *Client) PowerOn(ctx context.Context, vm *VM) error {
	task, err := c.Object(vm).PowerOn(ctx)
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	if err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
		return Explain(err, "power on", "VM "+vm.Name)
	}
	vm.PowerState = string(types.VirtualMachinePowerStatePoweredOn)
	return nil
}

// PowerOff powers vm off (hard); already off is fine.
func (c *Client) PowerOff(ctx context.Context, vm *VM) error {
	task, err := c.Object(vm).PowerOff(ctx)
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	if err != nil && !fault.IsAlreadyPoweredOffError(err) && !fault.Is(err, &types.InvalidPowerState{}) {
		return Explain(err, "power off", "VM "+vm.Name)
	}
	vm.PowerState = string(types.VirtualMachinePowerStatePoweredOff)
	return nil
}

// Reconfigure sets CPUs and memory of a powered-off vm.
func (c *Client) Reconfigure(ctx context.Context, vm *VM, cpus, memoryMiB int) error {
	task, err := c.Object(vm).Reconfigure(ctx, types.VirtualMachineConfigSpec{NumCPUs: int32(cpus), MemoryMB: int64(memoryMiB)})
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	if err != nil {
		return Explain(err, "reconfigure", "VM "+vm.Name)
	}
	vm.CPUs, vm.MemoryMiB = cpus, memoryMiB
	return nil
}

// ClearToken removes the enrollment token from vm's guestinfo (after the
// token was spent).
func (c *Client) ClearToken(ctx context.Context, vm *VM) error {
	task, err := c.Object(vm).Reconfigure(ctx, types.VirtualMachineConfigSpec{
		ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: KeyToken, Value: ""}}})
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	return Explain(err, "clear token of", "VM "+vm.Name)
}

// Destroy powers vm off and deletes it with its disk; gone already is fine.
func (c *Client) Destroy(ctx context.Context, vm *VM) error {
	if err := c.PowerOff(ctx, vm); err != nil {
		if fault.Is(err, &types.ManagedObjectNotFound{}) {
			return nil
		}
		return err
	}
	task, err := c.Object(vm).Destroy(ctx)
	if err == nil {
		// The full wait, not c.wait's early reads: destroys are not latency
		// critical, and the simulator reports a destroy done while it still
		// deletes the VM's files (an early return races the next destroy).
		err = task.Wait(ctx)
	}
	if err != nil && !fault.Is(err, &types.ManagedObjectNotFound{}) {
		return Explain(err, "delete", "VM "+vm.Name)
	}
	return nil
}

// WaitIP waits until VMware Tools in vm report an IPv4 address.
func (c *Client) WaitIP(ctx context.Context, vm *VM) (string, error) {
	ip, err := c.Object(vm).WaitForIP(ctx, true)
	if err != nil {
		return "", Explain(err, "wait for the guest IP of", "VM "+vm.Name+" (are VMware Tools running in the image?)")
	}
	vm.IP = ip
	return ip, nil
}
