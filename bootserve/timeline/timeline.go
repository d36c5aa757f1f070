// Package timeline records what happens to each machine while it boots:
// DHCP discover/offer/request/ack, TFTP files, the iPXE script, kernel and
// initrd downloads, and later enrollment, swarm join and reports. A Log keeps
// the events in memory, bounded per machine, and answers queries by MAC.
//
// The Kind constants are every kind a machine's timeline shows: the boot
// steps bootserve records here, and the steps the appliance writes to its
// store (appliance/store.Event.Kind, the same strings), which the running
// appliance copies onto this timeline (appliance/daemon's mirror).
package timeline

import (
	"bytes"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// Kind names a step on a machine's timeline.
type Kind string

// The boot steps bootserve records.
const (
	DHCPDiscover Kind = "dhcp-discover"
	DHCPOffer    Kind = "dhcp-offer"
	DHCPRequest  Kind = "dhcp-request"
	DHCPAck      Kind = "dhcp-ack"
	DHCPNak      Kind = "dhcp-nak"     // full DHCP mode: a request refused
	DHCPDecline  Kind = "dhcp-decline" // full DHCP mode: the client found its address in use
	DHCPRelease  Kind = "dhcp-release" // full DHCP mode: the client gave its lease back
	TFTP         Kind = "tftp"         // a file read over TFTP (Detail: its name)
	Script       Kind = "script"
	Kernel       Kind = "kernel"
	Initrd       Kind = "initrd"
	ISO          Kind = "iso"
)

// The steps the appliance records in its store, each by the package
// named.
const (
	VMCreated     Kind = "vm-created"     // appliance/fleet: apply created the machine's VM
	VMDestroyed   Kind = "vm-destroyed"   // appliance/fleet: apply or destroy deleted its VM
	Token         Kind = "token"          // appliance/enroll: a one-time enrollment token issued (never the token)
	Enroll        Kind = "enroll"         // appliance/enroll: its agent enrolled (node certificate issued)
	EnrollRefused Kind = "enroll-refused" // appliance/enroll: an enrollment refused, and why
	SwarmInit     Kind = "swarm-init"     // appliance/enroll: it founded the swarm
	SwarmJoin     Kind = "swarm-join"     // appliance/enroll: it joined the swarm
	Report        Kind = "report"         // appliance/enroll: a heartbeat that changed (or one every 10 min)
	Renew         Kind = "renew"          // appliance/enroll: its certificate renewed
	Revoke        Kind = "revoke"         // appliance/enroll: its certificate revoked; what became of its swarm node
	SwarmOp       Kind = "swarm-op"       // appliance/enroll: a drain, activate or remove of its swarm node through a manager
	Rotate        Kind = "rotate"         // appliance/rotate: a step of a roll onto a new image ("step: message")
)

// Event is one step of one machine. MAC may be nil when the step could not
// be tied to a machine (for example a TFTP read from an unknown address).
type Event struct {
	Time   time.Time        `json:"time"`
	MAC    net.HardwareAddr `json:"-"`
	IP     net.IP           `json:"ip,omitempty"`
	Arch   string           `json:"arch,omitempty"`
	Kind   Kind             `json:"kind"`
	Detail string           `json:"detail,omitempty"`
}

// Recorder receives timeline events. Implementations must be safe for
// concurrent use.
type Recorder interface {
	Record(Event)
}

// RecorderFunc adapts a function to a Recorder.
type RecorderFunc func(Event)

// Record calls f(e).
func (f RecorderFunc) Record(e Event) { f(e) }

// Discard is a Recorder that drops every event.
var Discard Recorder = RecorderFunc(func(Event) {})

// DefaultPerMachine is how many events a Log keeps per machine when
// Log.PerMachine is zero.
const DefaultPerMachine = 256

// DefaultMaxMachines is how many machines a Log keeps when
// Log.MaxMachines is zero.
const DefaultMaxMachines = 10000

// Log is an in-memory, concurrency-safe Recorder. The zero value is ready to
// use. It keeps the newest PerMachine events of each machine; events without
// a MAC are kept under the empty MAC "".
type Log struct {
	// PerMachine bounds the events kept per machine (0 → DefaultPerMachine).
	PerMachine int
	// MaxMachines bounds the machines kept (0 → DefaultMaxMachines); when
	// full, the machine heard from longest ago is forgotten, so a flood of
	// made-up MACs cannot grow the Log without bound.
	MaxMachines int

	mu       sync.Mutex
	machines map[string]*machine
}

type machine struct {
	mac   net.HardwareAddr
	first time.Time
	last  Event
	// ring holds the kept events; once it is full at the bound, the oldest
	// is at head and Record overwrites it instead of shifting the rest.
	ring []Event
	head int
}

// add keeps e and at most max-1 older events.
func (m *machine) add(e Event, max int) {
	if len(m.ring) == max {
		m.ring[m.head] = e
		m.head = (m.head + 1) % max
		return
	}
	if m.head != 0 || len(m.ring) > max {
		// The bound changed since the ring filled: back to oldest-first.
		ev := m.events()
		if len(ev) >= max {
			ev = ev[len(ev)-max+1:]
		}
		m.ring, m.head = ev, 0
	}
	m.ring = append(m.ring, e)
}

// events returns a copy of the kept events, oldest first.
func (m *machine) events() []Event {
	out := make([]Event, 0, len(m.ring))
	out = append(out, m.ring[m.head:]...)
	return append(out, m.ring[:m.head]...)
}

// Machine summarizes one machine in a Log.
type Machine struct {
	MAC       net.HardwareAddr `json:"-"`
	FirstSeen time.Time        `json:"first_seen"`
	Last      Event            `json:"last"`
	Events    int              `json:"events"`
}

// Record adds e. A zero Time is replaced by the current time.
func (l *Log) Record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.MAC = slices.Clone(e.MAC)
	e.IP = slices.Clone(e.IP)
	key := e.MAC.String()
	max := l.PerMachine
	if max <= 0 {
		max = DefaultPerMachine
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.machines == nil {
		l.machines = map[string]*machine{}
	}
	m := l.machines[key]
	if m == nil {
		l.evictLocked()
		m = &machine{mac: e.MAC, first: e.Time}
		l.machines[key] = m
	}
	m.add(e, max)
	m.last = e
}

// evictLocked forgets the least recently heard machine when the Log is full.
func (l *Log) evictLocked() {
	max := l.MaxMachines
	if max <= 0 {
		max = DefaultMaxMachines
	}
	if len(l.machines) < max {
		return
	}
	var oldest string
	var t time.Time
	for k, m := range l.machines {
		if oldest == "" || m.last.Time.Before(t) {
			oldest, t = k, m.last.Time
		}
	}
	delete(l.machines, oldest)
}

// Machines returns a summary of every machine seen, ordered by MAC.
func (l *Log) Machines() []Machine {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Machine, 0, len(l.machines))
	for _, m := range l.machines {
		out = append(out, Machine{MAC: slices.Clone(m.mac), FirstSeen: m.first, Last: m.last, Events: len(m.ring)})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].MAC, out[j].MAC) < 0 })
	return out
}

// Events returns a copy of mac's events, oldest first (nil if unknown).
func (l *Log) Events(mac net.HardwareAddr) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.machines[mac.String()]
	if m == nil {
		return nil
	}
	return m.events()
}

// Kinds returns the kinds of events in order.
func Kinds(events []Event) []Kind {
	out := make([]Kind, len(events))
	for i, e := range events {
		out[i] = e.Kind
	}
	return out
}

// InOrder reports whether want appears in events as a subsequence: every
// kind of want, in this order, with any other events between them. It
// returns the first kind it could not find after the previous one ("" when
// all were found). Tests use it to assert that a boot went through every
// stage in order.
func InOrder(events []Event, want ...Kind) (missing Kind, ok bool) {
	i := 0
	for _, e := range events {
		if i < len(want) && e.Kind == want[i] {
			i++
		}
	}
	if i == len(want) {
		return "", true
	}
	return want[i], false
}
