package api

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Bounds on untrusted fields.
const (
	MaxTokenLen = 128
	MaxMACs     = 16
	MaxCSR      = 4096
	maxShort    = 256
	maxList     = 64
	// MaxSwarmNodes bounds a pushed member list (node IDs and nodes).
	MaxSwarmNodes = 10000
	// MaxNodeTasks bounds a pushed node's task count.
	MaxNodeTasks = 1_000_000
)

func short(name, v string) error {
	if len(v) > maxShort {
		return fmt.Errorf("%s longer than %d bytes", name, maxShort)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains a control character", name)
		}
	}
	return nil
}

// Validate bounds an enroll request.
func (r *EnrollRequest) Validate() error {
	if r.Token == "" {
		return errors.New("token missing")
	}
	if len(r.Token) > MaxTokenLen {
		return fmt.Errorf("token longer than %d bytes", MaxTokenLen)
	}
	if err := short("bios_uuid", r.BIOSUUID); err != nil {
		return err
	}
	if r.BIOSUUID == "" {
		return errors.New("bios_uuid missing")
	}
	if len(r.MACs) > MaxMACs {
		return fmt.Errorf("more than %d macs", MaxMACs)
	}
	for _, m := range r.MACs {
		if _, err := net.ParseMAC(m); err != nil {
			return fmt.Errorf("mac %q: %v", m, err)
		}
	}
	if err := short("hostname", r.Hostname); err != nil {
		return err
	}
	return csrSize(r.CSR)
}

func csrSize(b []byte) error {
	if len(b) == 0 {
		return errors.New("csr missing")
	}
	if len(b) > MaxCSR {
		return fmt.Errorf("csr larger than %d bytes", MaxCSR)
	}
	return nil
}

// Validate bounds a renew request.
func (r *RenewRequest) Validate() error { return csrSize(r.CSR) }

// Validate bounds a report.
func (r *Report) Validate() error {
	for name, v := range map[string]string{
		"agent_version": r.AgentVersion, "image_version": r.ImageVersion,
		"docker.version": r.Docker.Version, "docker.api_version": r.Docker.APIVersion,
		"docker.root_dir": r.Docker.RootDir, "docker.storage_driver": r.Docker.StorageDriver,
		"swarm.node_id": r.Swarm.NodeID, "swarm.node_addr": r.Swarm.NodeAddr,
		"swarm.state": r.Swarm.State, "swarm.role": r.Swarm.Role,
		"swarm.cluster_id": r.Swarm.ClusterID,
		"disk.path":        r.Disk.Path, "disk.mount_point": r.Disk.MountPoint,
		"disk.device": r.Disk.Device, "disk.fs_type": r.Disk.FSType,
		"disk.uuid": r.Disk.UUID, "disk.label": r.Disk.Label,
		"disk.formatted": string(r.Disk.Formatted), "disk.docker_root_dir": r.Disk.DockerRootDir,
		"disk.storage_driver": r.Disk.StorageDriver,
	} {
		if err := short(name, v); err != nil {
			return err
		}
	}
	if len(r.Swarm.Error) > 4*maxShort || len(r.Disk.ProbeError) > 4*maxShort {
		return errors.New("error text too long")
	}
	if len(r.Errors) > maxList || len(r.Disk.Problems) > maxList {
		return fmt.Errorf("more than %d errors or problems", maxList)
	}
	for _, s := range append(append([]string(nil), r.Errors...), r.Disk.Problems...) {
		if len(s) > 4*maxShort {
			return errors.New("error text too long")
		}
	}
	if err := validateOpResults(r.OpResults); err != nil {
		return err
	}
	if p := r.JoinTokens; p != nil {
		for name, v := range map[string]string{"cluster_id": p.ClusterID, "worker": p.Worker, "manager": p.Manager} {
			if err := short("join_tokens."+name, v); err != nil {
				return err
			}
		}
		if len(p.NodeIDs) > MaxSwarmNodes {
			return fmt.Errorf("more than %d node ids", MaxSwarmNodes)
		}
		if len(p.Nodes) > MaxSwarmNodes {
			return fmt.Errorf("more than %d nodes", MaxSwarmNodes)
		}
		for i := range p.Nodes {
			if err := p.Nodes[i].Validate(); err != nil {
				return fmt.Errorf("join_tokens.nodes[%d]: %w", i, err)
			}
		}
		for _, id := range p.NodeIDs {
			if err := short("node_ids", id); err != nil {
				return err
			}
		}
		if len(p.Managers) > maxList {
			return fmt.Errorf("more than %d managers", maxList)
		}
		for _, m := range p.Managers {
			if _, _, err := net.SplitHostPort(m); err != nil {
				return fmt.Errorf("manager %q: %v", m, err)
			}
		}
	}
	return nil
}

// Validate bounds one pushed swarm node: an ID of letters, digits, '-',
// '_' or '.'; a role and state Docker defines; short printable strings.
func (n *SwarmNode) Validate() error {
	if err := ValidateNodeID(n.ID); err != nil {
		return err
	}
	for name, v := range map[string]string{"hostname": n.Hostname, "addr": n.Addr, "engine_version": n.EngineVersion} {
		if err := short(name, v); err != nil {
			return fmt.Errorf("node %s: %w", n.ID, err)
		}
	}
	switch n.Role {
	case RoleManager, RoleWorker:
	default:
		return fmt.Errorf("node %s: role %q is neither %q nor %q", n.ID, n.Role, RoleManager, RoleWorker)
	}
	switch n.State {
	case NodeReady, NodeDown, NodeUnknown, NodeDisconnected:
	default:
		return fmt.Errorf("node %s: state %q is not one of ready, down, unknown, disconnected", n.ID, n.State)
	}
	switch n.Availability {
	case "", AvailabilityActive, AvailabilityPause, AvailabilityDrain:
	default:
		return fmt.Errorf("node %s: availability %q is not one of active, pause, drain", n.ID, n.Availability)
	}
	switch {
	case n.Tasks < 0 || n.Tasks > MaxNodeTasks:
		return fmt.Errorf("node %s: tasks %d is not between 0 and %d", n.ID, n.Tasks, MaxNodeTasks)
	case n.Tasks > 0 && !n.TasksKnown:
		return fmt.Errorf("node %s: tasks %d without tasks_known", n.ID, n.Tasks)
	}
	return nil
}

// NormalizeUUID lowercases a BIOS UUID and drops braces, so values from
// SMBIOS, vSphere and the kernel compare equal.
func NormalizeUUID(s string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(s), "{}"))
}

// SameBIOSUUID compares two BIOS UUIDs as vSphere and the guest may print
// them: equal after NormalizeUUID, or equal with the first three fields
// byte-swapped (SMBIOS stores them little-endian, and older VMware
// hardware versions and kernels disagree on the order).
func SameBIOSUUID(a, b string) bool {
	a, b = NormalizeUUID(a), NormalizeUUID(b)
	if a == "" || b == "" {
		return false
	}
	return a == b || swapUUID(a) == b
}

// swapUUID reverses the byte order of the first three fields of a
// canonical UUID; other strings come back unchanged.
func swapUUID(u string) string {
	f := strings.Split(u, "-")
	if len(f) != 5 || len(f[0]) != 8 || len(f[1]) != 4 || len(f[2]) != 4 {
		return u
	}
	rev := func(h string) string {
		var b strings.Builder
		for i := len(h) - 2; i >= 0; i -= 2 {
			b.WriteString(h[i : i+2])
		}
		return b.String()
	}
	return rev(f[0]) + "-" + rev(f[1]) + "-" + rev(f[2]) + "-" + f[3] + "-" + f[4]
}
