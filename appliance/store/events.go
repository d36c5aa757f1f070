package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

const bucketEvents = "events"

// Event is one step in a machine's history (created, enrolled, joined, …).
type Event struct {
	Time   time.Time `json:"time"`
	MAC    string    `json:"mac"`
	VM     string    `json:"vm"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

// AppendEvent records e under its MAC (in insertion order).
func (tx *Tx) AppendEvent(e Event) error {
	e.MAC = NormalizeMAC(e.MAC)
	b, err := tx.bucket(bucketEvents)
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	key := make([]byte, 0, len(e.MAC)+9)
	key = append(key, e.MAC...)
	key = append(key, 0)
	key = binary.BigEndian.AppendUint64(key, seq)
	return b.Put(key, data)
}

// Events returns the events recorded for mac, oldest first.
func (tx *Tx) Events(mac string) ([]Event, error) {
	mac = NormalizeMAC(mac)
	b, err := tx.bucket(bucketEvents)
	if err != nil || b == nil {
		return nil, err
	}
	prefix := append([]byte(mac), 0)
	var out []Event
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("event for %s: corrupt record: %w", mac, err)
		}
		out = append(out, e)
	}
	return out, nil
}
