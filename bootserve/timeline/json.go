package timeline

import (
	"encoding/json"
	"fmt"
	"net"
)

// MarshalJSON writes the MAC in its usual colon form.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		MAC string `json:"mac,omitempty"`
		plain
	}{macString(e.MAC), plain(e)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var v struct {
		MAC string `json:"mac"`
		plain
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Event(v.plain)
	mac, err := parseMAC("event", v.MAC)
	if err != nil {
		return err
	}
	e.MAC = mac
	return nil
}

// MarshalJSON writes the MAC in its usual colon form.
func (m Machine) MarshalJSON() ([]byte, error) {
	type plain Machine
	return json.Marshal(struct {
		MAC string `json:"mac"`
		plain
	}{macString(m.MAC), plain(m)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Machine) UnmarshalJSON(b []byte) error {
	type plain Machine
	var v struct {
		MAC string `json:"mac"`
		plain
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = Machine(v.plain)
	mac, err := parseMAC("machine", v.MAC)
	if err != nil {
		return err
	}
	m.MAC = mac
	return nil
}

func macString(m net.HardwareAddr) string {
	if len(m) == 0 {
		return ""
	}
	return m.String()
}

// parseMAC reads the MAC of a timeline what ("event", "machine") as
// MarshalJSON writes it; "" is no MAC.
func parseMAC(what, s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("timeline %s mac %q: %w", what, s, err)
	}
	return mac, nil
}
