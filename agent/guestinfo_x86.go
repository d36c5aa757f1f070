//go:build amd64 || 386

package agent

import (
	"github.com/vmware/vmw-guestinfo/rpcvmx"
	"github.com/vmware/vmw-guestinfo/vmcheck"
)

// GuestinfoToken reads guestinfo.swarmboot.token through the VMware
// backdoor, only after CPUID says the CPU is a VMware virtual CPU (the
// backdoor instruction faults anywhere else). No privilege is needed.
type GuestinfoToken struct {
	// IsVMware overrides the CPUID check (tests); nil means
	// vmcheck.IsVirtualCPU.
	IsVMware func() bool
}

func (GuestinfoToken) String() string { return "vSphere guestinfo.swarmboot.token" }

// Token implements TokenSource.
func (g GuestinfoToken) Token() (string, error) {
	isVM := g.IsVMware
	if isVM == nil {
		isVM = vmcheck.IsVirtualCPU
	}
	if !isVM() {
		return "", nil
	}
	return rpcvmx.NewConfig().String("guestinfo.swarmboot.token", "")
}
