package api

import (
	"errors"
	"fmt"
)

// Node operations: what the appliance asks a swarmboot-made manager's
// agent to do to a swarm node (NodeOp.Do). The agent does them with its
// local Docker API, the way `docker node update --availability` and
// `docker node rm [--force]` do.
const (
	OpDrain       = "drain"        // availability drain: tasks move off the node
	OpActivate    = "activate"     // availability active: the node takes tasks again
	OpRemove      = "remove"       // docker node rm (Docker refuses a node that is not down)
	OpRemoveForce = "remove-force" // docker node rm --force
)

// MaxNodeOps bounds the operations of one ReportAnswer and the results of
// one Report.
const MaxNodeOps = 64

// MaxOpIDLen bounds NodeOp.ID.
const MaxOpIDLen = 64

// ReportAnswer is the body of a 200 answer to POST /v1/node/report. Only
// an active manager the appliance made manager ever gets Ops; every other
// node, and a manager with nothing to do, gets 204 No Content (as agents
// older than node operations always did), which means "no operations".
type ReportAnswer struct {
	Ops []NodeOp `json:"ops,omitempty"`
}

// NodeOp is one operation on the swarm node Node (its swarm node ID), to
// be done by the manager whose agent receives it. The agent answers with a
// NodeOpResult of the same ID in its next report.
type NodeOp struct {
	ID   string `json:"id"`   // the appliance's name for the operation
	Node string `json:"node"` // swarm node ID
	Do   string `json:"do"`   // OpDrain, OpActivate, OpRemove, OpRemoveForce
}

// NodeOpResult is what became of a NodeOp: Error empty means done.
// NotFound says the manager does not know the node (Error says so too).
type NodeOpResult struct {
	ID       string `json:"id"`
	Error    string `json:"error,omitempty"`
	NotFound bool   `json:"not_found,omitempty"`
}

// KnownOp reports whether do is one of the node operations.
func KnownOp(do string) bool {
	switch do {
	case OpDrain, OpActivate, OpRemove, OpRemoveForce:
		return true
	}
	return false
}

// ValidateNodeID checks a swarm node ID: 1 to 128 letters, digits, '-',
// '_' or '.'.
func ValidateNodeID(id string) error {
	if id == "" {
		return errors.New("id missing")
	}
	if len(id) > 128 {
		return errors.New("id longer than 128 bytes")
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("id %q: only letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

// validateOpID checks an operation ID: 1 to MaxOpIDLen letters, digits,
// '-' or '_'.
func validateOpID(id string) error {
	if id == "" {
		return errors.New("op id missing")
	}
	if len(id) > MaxOpIDLen {
		return fmt.Errorf("op id longer than %d bytes", MaxOpIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("op id %q: only letters, digits, '-' and '_'", id)
		}
	}
	return nil
}

// Validate checks one operation: its ID, the node's ID and a known verb.
func (o *NodeOp) Validate() error {
	if err := validateOpID(o.ID); err != nil {
		return err
	}
	if err := ValidateNodeID(o.Node); err != nil {
		return fmt.Errorf("op %s: node %w", o.ID, err)
	}
	if !KnownOp(o.Do) {
		return fmt.Errorf("op %s: %q is not one of %s, %s, %s, %s", o.ID, o.Do, OpDrain, OpActivate, OpRemove, OpRemoveForce)
	}
	return nil
}

// Validate bounds an answer: at most MaxNodeOps valid operations with
// distinct IDs.
func (a *ReportAnswer) Validate() error {
	if len(a.Ops) > MaxNodeOps {
		return fmt.Errorf("more than %d ops", MaxNodeOps)
	}
	seen := make(map[string]bool, len(a.Ops))
	for i := range a.Ops {
		if err := a.Ops[i].Validate(); err != nil {
			return fmt.Errorf("ops[%d]: %w", i, err)
		}
		if seen[a.Ops[i].ID] {
			return fmt.Errorf("ops[%d]: op id %s twice", i, a.Ops[i].ID)
		}
		seen[a.Ops[i].ID] = true
	}
	return nil
}

// Validate checks one result: a valid op ID and an error text of at most
// 1024 printable bytes.
func (r *NodeOpResult) Validate() error {
	if err := validateOpID(r.ID); err != nil {
		return err
	}
	if len(r.Error) > 4*maxShort {
		return fmt.Errorf("op %s: error text longer than %d bytes", r.ID, 4*maxShort)
	}
	for _, c := range r.Error {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("op %s: error text contains a control character", r.ID)
		}
	}
	return nil
}

func validateOpResults(rs []NodeOpResult) error {
	if len(rs) > MaxNodeOps {
		return fmt.Errorf("more than %d op results", MaxNodeOps)
	}
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			return fmt.Errorf("op_results[%d]: %w", i, err)
		}
	}
	return nil
}
