package bootserve

import (
	"net"
	"slices"
	"sync"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// neighbors learns IP → MAC pairs from timeline events (DHCP offers,
// acks and requests carry both) so that TFTP and HTTP downloads, which
// only see an IP, land on the right machine's timeline.
type neighbors struct {
	next timeline.Recorder
	mu   sync.RWMutex
	byIP map[string]net.HardwareAddr
}

func newNeighbors(next timeline.Recorder) *neighbors {
	return &neighbors{next: next, byIP: map[string]net.HardwareAddr{}}
}

// Record implements timeline.Recorder.
func (n *neighbors) Record(e timeline.Event) {
	if len(e.MAC) > 0 && e.IP != nil && !e.IP.IsUnspecified() {
		n.mu.Lock()
		if len(n.byIP) > 65536 {
			clear(n.byIP) // bounded: a flood of fake clients cannot grow it forever
		}
		n.byIP[e.IP.String()] = slices.Clone(e.MAC)
		n.mu.Unlock()
	}
	n.next.Record(e)
}

// MAC returns the MAC last seen with ip (nil if none).
func (n *neighbors) MAC(ip net.IP) net.HardwareAddr {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.byIP[ip.String()]
}
