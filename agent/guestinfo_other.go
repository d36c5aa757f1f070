//go:build !(amd64 || 386)

package agent

// GuestinfoToken is empty off x86: vSphere guestinfo needs the VMware
// backdoor.
type GuestinfoToken struct{ IsVMware func() bool }

func (GuestinfoToken) String() string { return "vSphere guestinfo.swarmboot.token" }

// Token implements TokenSource.
func (GuestinfoToken) Token() (string, error) { return "", nil }
