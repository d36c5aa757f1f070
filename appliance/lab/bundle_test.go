package lab

import (
	"encoding/json"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allCaps is every capability runc knows on the Debian 6.1 kernel.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// privilegedSpec is the OCI runtime config of a lab system container: all
// capabilities, every device, the host's network, PID, IPC and UTS
// namespaces (only a mount namespace of its own), and binds "src:dst[:opts]"
// as in linuxkit.yml (opts comma separated, e.g. "rshared,rbind"). It is
// what linuxkit/lab.yml asks of the format and docker images; the real
// builder generates its own from the yml (images/yml.RuntimeConfig), this
// one serves tests that run bundles without the builder.
func privilegedSpec(name string, args []string, shared bool, binds ...string) ([]byte, error) {
	s := specs.Spec{
		Version:  specs.Version,
		Hostname: "",
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: allCaps, Effective: allCaps, Permitted: allCaps,
			},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "nodev", "noexec"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "nodev", "noexec"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup2", Options: []string{"nosuid", "nodev", "noexec"}},
			{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind", "rw"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/lab/" + name,
			Namespaces:  []specs.LinuxNamespace{{Type: specs.MountNamespace}},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
			},
		},
	}
	if shared {
		s.Linux.RootfsPropagation = "shared"
	}
	for _, b := range binds {
		m := specs.Mount{Type: "bind", Options: []string{"rbind", "rw"}}
		parts := strings.SplitN(b, ":", 3)
		m.Source, m.Destination = parts[0], parts[len(parts)-1]
		if len(parts) == 3 {
			m.Source, m.Destination = parts[0], parts[1]
			m.Options = strings.Split(parts[2], ",")
		}
		s.Mounts = append(s.Mounts, m)
	}
	return json.MarshalIndent(s, "", "\t")
}
