package store

import (
	"encoding/json"
	"time"
)

var keySwarmSite = []byte("site")

// SwarmSite is the site's swarm as the appliance decided it.
type SwarmSite struct {
	// InitNode is the one manager chosen to run "swarm init"; empty until
	// a manager asks for its plan (or when the swarm exists outside).
	InitNode  string    `json:"initNode,omitempty"`
	InitAt    time.Time `json:"initAt,omitzero"`
	ClusterID string    `json:"clusterID,omitempty"`
}

// SwarmSite returns the site's swarm record (zero when none yet).
func (tx *Tx) SwarmSite() (SwarmSite, error) {
	var s SwarmSite
	b, err := tx.bucket(bucketSwarmState)
	if err != nil || b == nil {
		return s, err
	}
	if data := b.Get(keySwarmSite); data != nil {
		err = json.Unmarshal(data, &s)
	}
	return s, err
}

// PutSwarmSite replaces the site's swarm record.
func (tx *Tx) PutSwarmSite(s SwarmSite) error {
	b, err := tx.bucket(bucketSwarmState)
	if err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return b.Put(keySwarmSite, data)
}

// ClaimSwarmInit makes node the site's init manager unless another node
// already is, and returns the init manager. Called inside one Update, at
// most one node ever wins.
func (tx *Tx) ClaimSwarmInit(node string, now time.Time) (string, error) {
	s, err := tx.SwarmSite()
	if err != nil {
		return "", err
	}
	if s.InitNode != "" {
		return s.InitNode, nil
	}
	s.InitNode, s.InitAt = node, now
	return node, tx.PutSwarmSite(s)
}
