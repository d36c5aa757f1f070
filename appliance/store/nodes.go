package store

import (
	"encoding/json"
	"fmt"
	"time"
)

const (
	bucketNodes      = "nodes"
	bucketNodeKeys   = "node-keys" // key fingerprint → node name
	bucketRevoked    = "revoked"   // certificate serial (hex) → RFC 3339 time
	bucketSwarmState = "swarm"
)

// Node is an enrolled machine: who it is, the key and certificate it
// holds, its swarm role, and its latest heartbeat.
type Node struct {
	Name           string    `json:"name"` // the VM name, or "mac-<mac>" for machines swarmboot did not create
	VM             string    `json:"vm,omitempty"`
	BIOSUUID       string    `json:"biosUUID"`
	MACs           []string  `json:"macs"`
	Role           string    `json:"role"` // manager or worker
	KeyFingerprint string    `json:"keyFingerprint"`
	CertSerial     string    `json:"certSerial"` // hex
	CertPEM        []byte    `json:"certPEM"`
	NotAfter       time.Time `json:"notAfter"`
	Enrolled       time.Time `json:"enrolled"`
	Revoked        time.Time `json:"revoked,omitzero"`

	LastSeen    time.Time       `json:"lastSeen,omitzero"`
	LastReport  json.RawMessage `json:"lastReport,omitempty"` // api.Report as received
	SwarmNodeID string          `json:"swarmNodeID,omitempty"`
	// SwarmNodeSeen is when the node first reported SwarmNodeID.
	SwarmNodeSeen time.Time `json:"swarmNodeSeen,omitzero"`
}

// MAC is the node's first MAC (events are keyed by MAC), or "".
func (n *Node) MAC() string {
	if len(n.MACs) == 0 {
		return ""
	}
	return n.MACs[0]
}

// PutNode inserts or replaces a node record and indexes its key.
func (tx *Tx) PutNode(n Node) error {
	b, err := tx.bucket(bucketNodes)
	if err != nil {
		return err
	}
	kb, err := tx.bucket(bucketNodeKeys)
	if err != nil {
		return err
	}
	if old, err := tx.Node(n.Name); err == nil && old.KeyFingerprint != n.KeyFingerprint {
		if err := kb.Delete([]byte(old.KeyFingerprint)); err != nil {
			return err
		}
	}
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if n.KeyFingerprint != "" {
		if err := kb.Put([]byte(n.KeyFingerprint), []byte(n.Name)); err != nil {
			return err
		}
	}
	return b.Put([]byte(n.Name), data)
}

// Node returns the node named name, or ErrNotFound.
func (tx *Tx) Node(name string) (*Node, error) {
	b, err := tx.bucket(bucketNodes)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("node %s: %w", name, ErrNotFound)
	}
	data := b.Get([]byte(name))
	if data == nil {
		return nil, fmt.Errorf("node %s: %w", name, ErrNotFound)
	}
	var n Node
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("node %s: corrupt record: %w", name, err)
	}
	return &n, nil
}

// NodeByKey returns the node holding the key with this fingerprint.
func (tx *Tx) NodeByKey(fingerprint string) (*Node, error) {
	kb, err := tx.bucket(bucketNodeKeys)
	if err != nil {
		return nil, err
	}
	if kb == nil {
		return nil, fmt.Errorf("node key: %w", ErrNotFound)
	}
	name := kb.Get([]byte(fingerprint))
	if name == nil {
		return nil, fmt.Errorf("node key: %w", ErrNotFound)
	}
	return tx.Node(string(name))
}

// Nodes returns every node, ordered by name.
func (tx *Tx) Nodes() ([]Node, error) {
	b, err := tx.bucket(bucketNodes)
	if err != nil || b == nil {
		return nil, err
	}
	var out []Node
	err = b.ForEach(func(k, v []byte) error {
		var n Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("node %s: corrupt record: %w", k, err)
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// RevokeCert records a certificate serial (hex) as revoked.
func (tx *Tx) RevokeCert(serial string, now time.Time) error {
	b, err := tx.bucket(bucketRevoked)
	if err != nil {
		return err
	}
	return b.Put([]byte(serial), []byte(now.UTC().Format(time.RFC3339)))
}

// CertRevoked reports whether the certificate serial (hex) was revoked.
func (tx *Tx) CertRevoked(serial string) (bool, error) {
	b, err := tx.bucket(bucketRevoked)
	if err != nil || b == nil {
		return false, err
	}
	return b.Get([]byte(serial)) != nil, nil
}

// RevokeNode marks the node revoked and revokes its current certificate.
func (tx *Tx) RevokeNode(name string, now time.Time) error {
	n, err := tx.Node(name)
	if err != nil {
		return err
	}
	n.Revoked = now
	if err := tx.RevokeCert(n.CertSerial, now); err != nil {
		return err
	}
	return tx.PutNode(*n)
}
