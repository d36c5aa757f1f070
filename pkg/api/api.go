// Package api holds the wire types shared by the swarmboot agent and the
// appliance's agent API (enroll, plan, report, renew), the strict JSON
// decoding both sides use for them, and the trust file the image builder
// bakes into every image (appliance URL + CA certificate).
//
// Every request body is untrusted: Decode refuses unknown fields, trailing
// data and bodies over MaxBody, and each request type has a Validate method
// that bounds every string and list.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Paths of the agent API (TLS only; everything but Enroll needs a client
// certificate issued by the appliance's CA).
const (
	PathEnroll = "/v1/enroll"
	PathPlan   = "/v1/node/plan"
	PathReport = "/v1/node/report"
	PathRenew  = "/v1/node/renew"
)

// MaxBody is the largest request or response body either side accepts.
const MaxBody = 512 << 10

// ErrDecode is wrapped by every decoding or validation refusal.
var ErrDecode = errors.New("api: bad message")

// Decode reads exactly one JSON value into v from r: at most MaxBody bytes,
// no unknown fields, nothing after the value.
func Decode(r io.Reader, v any) error {
	lr := &io.LimitedReader{R: r, N: MaxBody + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if lr.N <= 0 {
			return fmt.Errorf("%w: body larger than %d bytes", ErrDecode, MaxBody)
		}
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if lr.N <= 0 {
			return fmt.Errorf("%w: body larger than %d bytes", ErrDecode, MaxBody)
		}
		return fmt.Errorf("%w: data after the JSON value", ErrDecode)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrDecode, err)
		}
	}
	return nil
}

// Error is the body of every non-2xx answer of the agent API.
type Error struct {
	Error string `json:"error"`
}

// EnrollRequest is POST /v1/enroll: the one-time token, the machine's
// identity and a PKCS#10 certificate request for the node's key.
type EnrollRequest struct {
	Token    string   `json:"token"`
	BIOSUUID string   `json:"bios_uuid"`
	MACs     []string `json:"macs"`
	Hostname string   `json:"hostname,omitempty"`
	CSR      []byte   `json:"csr"` // DER
}

// EnrollResponse carries the node certificate (PEM) and the CA (PEM).
type EnrollResponse struct {
	Node        string `json:"node"`
	Certificate []byte `json:"certificate"`
	CA          []byte `json:"ca"`
}

// RenewRequest is POST /v1/node/renew (mTLS): a CSR for the same or a new
// key.
type RenewRequest struct {
	CSR []byte `json:"csr"` // DER
}

// RenewResponse carries the renewed certificate (PEM).
type RenewResponse struct {
	Certificate []byte `json:"certificate"`
}

// Action is what a plan tells the agent to do.
type Action string

// Plan actions.
const (
	ActionNone        Action = "none"         // nothing to do (already right, or wait)
	ActionInit        Action = "init"         // docker swarm init: this node founds the site's swarm
	ActionJoin        Action = "join"         // docker swarm join with Role, Managers, JoinToken
	ActionLeaveRejoin Action = "leave-rejoin" // the swarm lost this node: leave, then join
)

// Swarm roles.
const (
	RoleManager = "manager"
	RoleWorker  = "worker"
)

// Plan is the answer of GET /v1/node/plan. JoinToken is a secret: it only
// travels over mutual TLS and is never logged.
type Plan struct {
	Action    Action   `json:"action"`
	Role      string   `json:"role,omitempty"`
	Managers  []string `json:"managers,omitempty"` // host:port of swarm managers
	JoinToken string   `json:"join_token,omitempty"`
	ClusterID string   `json:"cluster_id,omitempty"`
	Reason    string   `json:"reason,omitempty"` // for the console and the timeline
	// RetryAfter tells the agent when to ask again (seconds) when the
	// action is "none" because something is not ready yet.
	RetryAfter int `json:"retry_after,omitempty"`
}

// Report is POST /v1/node/report, the heartbeat.
type Report struct {
	Time         time.Time    `json:"time"`
	AgentVersion string       `json:"agent_version,omitempty"`
	ImageVersion string       `json:"image_version,omitempty"`
	Docker       DockerState  `json:"docker"`
	Swarm        SwarmState   `json:"swarm"`
	Disk         DiskReport   `json:"disk"`
	JoinTokens   *ManagerPush `json:"join_tokens,omitempty"`
	Errors       []string     `json:"errors,omitempty"`
	// OpResults answer the node operations a manager's agent was given in
	// earlier report answers (ReportAnswer), by operation ID.
	OpResults []NodeOpResult `json:"op_results,omitempty"`
}

// ManagerPush is what a swarmboot-managed manager's agent pushes so the
// appliance can hand join tokens to the other nodes. Secret.
type ManagerPush struct {
	ClusterID string   `json:"cluster_id"`
	Worker    string   `json:"worker"`
	Manager   string   `json:"manager"`
	Managers  []string `json:"managers"` // host:port
	// NodeIDs are the swarm's current members, so the appliance can tell
	// a node the swarm removed (it still believes it is active) to rejoin.
	NodeIDs []string `json:"node_ids,omitempty"`
	// Nodes is the same member list in full (hostname, role, state,
	// address, …), for people to read: what the appliance shows as the
	// swarm's nodes.
	Nodes []SwarmNode `json:"nodes,omitempty"`
}

// SwarmNode is one swarm member as a manager's Docker API lists it (GET /nodes).
type SwarmNode struct {
	ID            string `json:"id"`
	Hostname      string `json:"hostname,omitempty"`
	Role          string `json:"role"`                   // manager | worker
	State         string `json:"state"`                  // ready | down | unknown | disconnected
	Availability  string `json:"availability,omitempty"` // active | pause | drain
	Addr          string `json:"addr,omitempty"`         // the node's address as the manager sees it
	Leader        bool   `json:"leader,omitempty"`
	EngineVersion string `json:"engine_version,omitempty"`
	// Tasks is how many swarm tasks are still on the node: running, or
	// told to shut down (a drain) and not stopped yet. TasksKnown says
	// the manager's agent counted them; an agent too old to count sends
	// neither, and unknown is not 0.
	Tasks      int  `json:"tasks,omitempty"`
	TasksKnown bool `json:"tasks_known,omitempty"`
}

// Swarm node states and availabilities (Docker's names).
const (
	NodeReady        = "ready"
	NodeDown         = "down"
	NodeUnknown      = "unknown"
	NodeDisconnected = "disconnected"

	AvailabilityActive = "active"
	AvailabilityPause  = "pause"
	AvailabilityDrain  = "drain"
)

// DockerState is the local dockerd as the agent sees it.
type DockerState struct {
	Reachable     bool   `json:"reachable"`
	Version       string `json:"version,omitempty"`
	APIVersion    string `json:"api_version,omitempty"`
	RootDir       string `json:"root_dir,omitempty"`
	StorageDriver string `json:"storage_driver,omitempty"`
}

// SwarmState is the node's swarm membership from docker info.
type SwarmState struct {
	NodeID           string `json:"node_id,omitempty"`
	NodeAddr         string `json:"node_addr,omitempty"`
	State            string `json:"state,omitempty"` // inactive, pending, active, error, locked
	Role             string `json:"role,omitempty"`  // manager or worker (when active)
	ClusterID        string `json:"cluster_id,omitempty"`
	ControlAvailable bool   `json:"control_available,omitempty"`
	Error            string `json:"error,omitempty"`
}

// Formatted says when the filesystem behind /var/lib/docker was made.
type Formatted string

// Formatted values.
const (
	FormattedThisBoot    Formatted = "this-boot"
	FormattedPreExisting Formatted = "pre-existing"
	FormattedUnknown     Formatted = "unknown"
)

// DiskReport says whether Docker's data lives on a persistent disk.
type DiskReport struct {
	Path        string `json:"path"`        // the directory checked, /var/lib/docker
	MountPoint  string `json:"mount_point"` // the mount that backs Path
	Device      string `json:"device"`      // mount source, e.g. /dev/sda1, tmpfs
	FSType      string `json:"fs_type"`
	UUID        string `json:"uuid,omitempty"`
	Label       string `json:"label,omitempty"`
	BlockDevice bool   `json:"block_device"` // the source is a block device
	// Persistent is true when Path is on a block device with a disk
	// filesystem; false means Docker's data is in RAM (tmpfs, rootfs).
	Persistent bool      `json:"persistent"`
	Formatted  Formatted `json:"formatted"`
	MkfsTime   time.Time `json:"mkfs_time,omitzero"`
	BootTime   time.Time `json:"boot_time,omitzero"`

	SizeBytes  uint64 `json:"size_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
	Inodes     uint64 `json:"inodes"`
	InodesFree uint64 `json:"inodes_free"`

	ProbeOK    bool   `json:"probe_ok"` // write, fsync, read back, delete
	ProbeError string `json:"probe_error,omitempty"`

	SwarmStateOnDisk bool   `json:"swarm_state_on_disk"` // <root>/swarm/state.json present
	DockerRootDir    string `json:"docker_root_dir,omitempty"`
	StorageDriver    string `json:"storage_driver,omitempty"`

	Problems []string `json:"problems,omitempty"` // human-readable findings
}
