package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Paths of the admin API (HTTP over the unix socket).
const (
	PathTokens = "/v1/tokens" // POST TokenRequest → TokenResponse
	PathRevoke = "/v1/revoke" // POST RevokeRequest → RevokeResponse
	PathNodes  = "/v1/nodes"  // GET → NodesResponse
)

// MaxRequest is the largest request body the server reads.
const MaxRequest = 4 << 10

// maxName bounds VM and node names (a DNS name's length).
const maxName = 253

// ErrDecode marks a request the server refuses to read.
var ErrDecode = errors.New("admin: bad request")

// TokenRequest asks for a one-time enrollment token (enroll.NewToken):
// for a VM swarmboot created, or for any machine by MAC.
type TokenRequest struct {
	VM       string `json:"vm,omitempty"`
	MAC      string `json:"mac,omitempty"`
	BIOSUUID string `json:"bios_uuid,omitempty"`
	// TTL is a Go duration ("2h"); "" or "0s" → enroll.DefaultTTL, or
	// with KernelLine the appliance's kernel-line token lifetime.
	TTL string `json:"ttl,omitempty"`
	// KernelLine also puts the token on the machine's iPXE kernel line
	// (swarmboot.token=…) in the running appliance's memory, until it
	// expires or the machine enrolls. Such a token is bound to the MAC
	// (the VM's, for VM), as the appliance's --token tokens are.
	KernelLine bool `json:"kernel_line,omitempty"`
}

// TokenResponse carries the token: the only time it exists in clear.
type TokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// MAC is the machine whose iPXE kernel line carries the token (only
	// with KernelLine).
	MAC string `json:"mac,omitempty"`
}

// RevokeRequest names the node to revoke (as `swarmboot node ls` shows it).
type RevokeRequest struct {
	Name string `json:"name"`
}

// RevokeResponse says when the node was revoked; Already is set when it
// had been revoked before (Revoked is then that earlier time).
type RevokeResponse struct {
	Name    string    `json:"name"`
	Revoked time.Time `json:"revoked"`
	Already bool      `json:"already,omitempty"`
	// SwarmNote says, in one line for people, what became of the node's
	// swarm node: removed by a manager, not in the swarm, never reported
	// one, or why it stays and the docker node rm --force to run on a
	// manager (enroll.Server.RevokeNode). Empty with Already.
	SwarmNote string `json:"swarm_note,omitempty"`
}

// NodesResponse lists every enrolled node.
type NodesResponse struct {
	Nodes []Node `json:"nodes"`
}

// Node is an enrolled node as the operator sees it: no key, certificate
// or token. LastSeen and Swarm come from the node's last heartbeat as
// stored (the agent API commits heartbeats about once a second).
type Node struct {
	Name         string    `json:"name"`
	VM           string    `json:"vm,omitempty"`
	MACs         []string  `json:"macs"`
	Role         string    `json:"role"`
	Enrolled     time.Time `json:"enrolled"`
	CertNotAfter time.Time `json:"cert_not_after"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	Revoked      time.Time `json:"revoked,omitzero"`
	Image        string    `json:"image,omitempty"`
	// Swarm is the swarm state of the last report ("" state: no report).
	Swarm SwarmState `json:"swarm"`
}

// SwarmState is the swarm part of a node's last report.
type SwarmState struct {
	State  string `json:"state,omitempty"` // inactive, pending, active, error, locked
	Role   string `json:"role,omitempty"`
	NodeID string `json:"node_id,omitempty"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Validate checks the request's fields (NewToken checks the MAC again and
// that the VM exists).
func (r *TokenRequest) Validate() error {
	if r.VM == "" && r.MAC == "" {
		return errors.New("name the machine: vm or mac")
	}
	if err := checkName("vm", r.VM); err != nil {
		return err
	}
	if r.MAC != "" {
		if hw, err := net.ParseMAC(r.MAC); err != nil || len(hw) != 6 {
			return fmt.Errorf("mac %q: not an Ethernet MAC", printable(r.MAC))
		}
	}
	if err := checkName("bios_uuid", r.BIOSUUID); err != nil {
		return err
	}
	if r.KernelLine && r.VM != "" && r.MAC != "" {
		return errors.New("a kernel-line token goes to one machine's script: give vm or mac, not both")
	}
	if r.KernelLine && r.BIOSUUID != "" {
		return errors.New("a kernel-line token is bound to the MAC, not to a BIOS UUID: drop bios_uuid")
	}
	if _, err := r.Duration(); err != nil {
		return err
	}
	return nil
}

// Duration is TTL parsed (0 when empty).
func (r *TokenRequest) Duration() (time.Duration, error) {
	return optDuration("ttl", r.TTL, "2h or 30m")
}

// optDuration parses the request field named field: a Go duration, not
// negative, 0 when empty; a bad one is refused with an example.
func optDuration(field, v, example string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a duration such as %s", field, printable(v), example)
	}
	return d, nil
}

// Validate checks the node name.
func (r *RevokeRequest) Validate() error {
	if r.Name == "" {
		return errors.New("name the node to revoke (see swarmboot node ls)")
	}
	return checkName("name", r.Name)
}

// checkName refuses overlong values and control or invalid characters.
func checkName(field, v string) error {
	if len(v) > maxName {
		return fmt.Errorf("%s: longer than %d bytes", field, maxName)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s: not UTF-8", field)
	}
	for _, c := range v {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("%s: control or non-printing character %U", field, c)
		}
	}
	return nil
}

// printable shortens a value and escapes what is not printable, for an
// error message.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// decode reads one JSON value of at most MaxRequest bytes into v strictly
// (unknown fields, trailing data and oversized bodies are refused) and
// validates it.
func decode(r io.Reader, v interface{ Validate() error }) error {
	lr := &io.LimitedReader{R: r, N: MaxRequest + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if lr.N <= 0 {
		return fmt.Errorf("%w: body larger than %d bytes", ErrDecode, MaxRequest)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return nil
}
