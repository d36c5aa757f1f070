package store

import (
	"encoding/json"
	"fmt"
	"time"
)

const (
	bucketRotation = "rotation"
	keyRotation    = "current"
)

// Rotation states.
const (
	RotationRunning     = "running"     // a roll is under way in the running appliance
	RotationDone        = "done"        // every node is on its target image
	RotationStopped     = "stopped"     // a node failed or timed out; the roll stopped there
	RotationInterrupted = "interrupted" // the appliance stopped during the roll
)

// Rotation is the progress of the latest roll of nodes onto new images
// (appliance/rotate): what it was asked, where each node stands, how it
// ended. Only the latest is kept; a new roll replaces it.
type Rotation struct {
	ID      string          `json:"id"` // the start time, RFC 3339
	Groups  []RotationGroup `json:"groups"`
	State   string          `json:"state"`
	Started time.Time       `json:"started"`
	Ended   time.Time       `json:"ended,omitzero"`
	// Message says how the roll ended and, when it stopped, what to do.
	Message string         `json:"message,omitempty"`
	Nodes   []RotationNode `json:"nodes"`
}

// RotationGroup is one group rolled onto Image (a build name) whose
// agents report Version.
type RotationGroup struct {
	Name    string `json:"name"`
	Image   string `json:"image"`
	Version string `json:"version"`
}

// RotationNode is one VM's place in the roll, in roll order.
type RotationNode struct {
	VM     string `json:"vm"`
	Node   string `json:"node,omitempty"` // the enrolled node's name
	Group  string `json:"group"`
	Role   string `json:"role"`
	NodeID string `json:"node_id,omitempty"` // swarm node ID
	From   string `json:"from,omitempty"`    // image version before
	To     string `json:"to"`                // target image version
	// Step is where the node stands: pending, skipped, drain, image,
	// reset, boot, activate, done or failed.
	Step string `json:"step"`
	// Drained says this roll drained the node (so a resumed roll may
	// activate it again; a node someone else drained stays drained).
	Drained bool      `json:"drained,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// PutRotation records r as the latest roll.
func (tx *Tx) PutRotation(r Rotation) error {
	b, err := tx.bucket(bucketRotation)
	if err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(keyRotation), data)
}

// Rotation returns the latest roll, or ErrNotFound when none ran.
func (tx *Tx) Rotation() (*Rotation, error) {
	b, err := tx.bucket(bucketRotation)
	if err != nil {
		return nil, err
	}
	var data []byte
	if b != nil {
		data = b.Get([]byte(keyRotation))
	}
	if data == nil {
		return nil, fmt.Errorf("rotation: %w", ErrNotFound)
	}
	var r Rotation
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("rotation: corrupt record: %w", err)
	}
	return &r, nil
}
