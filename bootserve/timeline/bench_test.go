package timeline

import (
	"net"
	"testing"
	"time"
)

// BenchmarkRecordFull records into a machine that already holds
// DefaultPerMachine events, the steady state of a machine that boots again
// and again (every DHCP packet records an event).
func BenchmarkRecordFull(b *testing.B) {
	var l Log
	e := Event{Time: time.Unix(1, 0), MAC: mac("52:54:00:12:34:56"), IP: net.ParseIP("10.77.0.5"), Kind: DHCPDiscover}
	for range DefaultPerMachine {
		l.Record(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Record(e)
	}
	if n := len(l.Events(e.MAC)); n != DefaultPerMachine {
		b.Fatalf("events = %d, want %d", n, DefaultPerMachine)
	}
}
