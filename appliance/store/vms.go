package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	bucketVMs   = "vms"
	bucketVMMAC = "vm-by-mac"
)

// VM is a virtual machine swarmboot created and owns.
type VM struct {
	Name         string    `json:"name"`
	Group        string    `json:"group"`
	Role         string    `json:"role"`
	Image        string    `json:"image"`
	MAC          string    `json:"mac"`
	BIOSUUID     string    `json:"biosUUID"`
	InstanceUUID string    `json:"instanceUUID"`
	MoRef        string    `json:"moref"`
	Created      time.Time `json:"created"`
}

// NormalizeMAC lower-cases a MAC address so lookups do not depend on case.
func NormalizeMAC(mac string) string { return strings.ToLower(strings.TrimSpace(mac)) }

// PutVM inserts or replaces the record for vm.Name (and its MAC index).
func (tx *Tx) PutVM(vm VM) error {
	if vm.Name == "" {
		return fmt.Errorf("put vm: empty name")
	}
	vm.MAC = NormalizeMAC(vm.MAC)
	b, err := tx.bucket(bucketVMs)
	if err != nil {
		return err
	}
	idx, err := tx.bucket(bucketVMMAC)
	if err != nil {
		return err
	}
	if old := b.Get([]byte(vm.Name)); old != nil {
		var o VM
		if json.Unmarshal(old, &o) == nil && o.MAC != "" && o.MAC != vm.MAC {
			if err := idx.Delete([]byte(o.MAC)); err != nil {
				return err
			}
		}
	}
	data, err := json.Marshal(vm)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(vm.Name), data); err != nil {
		return err
	}
	if vm.MAC != "" {
		return idx.Put([]byte(vm.MAC), []byte(vm.Name))
	}
	return nil
}

// VM returns the record named name, or ErrNotFound.
func (tx *Tx) VM(name string) (*VM, error) {
	b, err := tx.bucket(bucketVMs)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("vm %s: %w", name, ErrNotFound)
	}
	data := b.Get([]byte(name))
	if data == nil {
		return nil, fmt.Errorf("vm %s: %w", name, ErrNotFound)
	}
	var vm VM
	if err := json.Unmarshal(data, &vm); err != nil {
		return nil, fmt.Errorf("vm %s: corrupt record: %w", name, err)
	}
	return &vm, nil
}

// VMs returns every VM record, sorted by name.
func (tx *Tx) VMs() ([]VM, error) {
	b, err := tx.bucket(bucketVMs)
	if err != nil || b == nil {
		return nil, err
	}
	var out []VM
	err = b.ForEach(func(k, v []byte) error {
		var vm VM
		if err := json.Unmarshal(v, &vm); err != nil {
			return fmt.Errorf("vm %s: corrupt record: %w", k, err)
		}
		out = append(out, vm)
		return nil
	})
	return out, err
}

// DeleteVM removes the record named name; a missing record is not an error.
func (tx *Tx) DeleteVM(name string) error {
	b, err := tx.bucket(bucketVMs)
	if err != nil {
		return err
	}
	old := b.Get([]byte(name))
	if old == nil {
		return nil
	}
	var o VM
	if json.Unmarshal(old, &o) == nil && o.MAC != "" {
		idx, err := tx.bucket(bucketVMMAC)
		if err != nil {
			return err
		}
		if string(idx.Get([]byte(o.MAC))) == name {
			if err := idx.Delete([]byte(o.MAC)); err != nil {
				return err
			}
		}
	}
	return b.Delete([]byte(name))
}

// VMByMAC returns the VM whose NIC has mac, or ErrNotFound.
func (tx *Tx) VMByMAC(mac string) (*VM, error) {
	mac = NormalizeMAC(mac)
	idx, err := tx.bucket(bucketVMMAC)
	if err != nil {
		return nil, err
	}
	if idx == nil {
		return nil, fmt.Errorf("vm with mac %s: %w", mac, ErrNotFound)
	}
	name := idx.Get([]byte(mac))
	if name == nil {
		return nil, fmt.Errorf("vm with mac %s: %w", mac, ErrNotFound)
	}
	return tx.VM(string(name))
}
