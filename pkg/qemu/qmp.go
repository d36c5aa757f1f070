package qemu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp runs one QMP command on the VM's monitor socket and returns its error.
func qmp(sock, command string) error {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("qemu: connect QMP %s: %w", sock, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(bufio.NewReader(conn))
	var greeting map[string]json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("qemu: QMP greeting: %w", err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return fmt.Errorf("qemu: %s does not speak QMP", sock)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if err := json.NewEncoder(conn).Encode(map[string]string{"execute": cmd}); err != nil {
			return fmt.Errorf("qemu: QMP %s: %w", cmd, err)
		}
		for {
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Class, Desc string
				} `json:"error"`
				Event string `json:"event"`
			}
			if err := dec.Decode(&resp); err != nil {
				return fmt.Errorf("qemu: QMP %s: %w", cmd, err)
			}
			if resp.Event != "" {
				continue
			}
			if resp.Error != nil {
				return fmt.Errorf("qemu: QMP %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
			}
			break
		}
	}
	return nil
}
