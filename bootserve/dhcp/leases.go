package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrPoolFull is returned when no address is free for a client.
var ErrPoolFull = errors.New("dhcp: address pool exhausted")

type leaseState uint8

const (
	offered leaseState = iota
	bound
	declined
)

var stateNames = [...]string{offered: "offered", bound: "bound", declined: "declined"}

type lease struct {
	mac     string // "" for a declined address
	ip      uint32
	state   leaseState
	expires time.Time
}

// offerHold is how long an offered address stays set aside for the client.
const offerHold = 30 * time.Second

// leases is the full-mode address table. It is safe for concurrent use.
type leases struct {
	mu          sync.Mutex
	start, end  uint32
	mask, netw  uint32
	skip        map[uint32]bool   // server, router: never handed out
	reserved    map[uint32]string // ip → mac
	reservation map[string]uint32 // mac → ip
	leaseTime   time.Duration
	byMAC       map[string]*lease
	byIP        map[uint32]*lease
	next        uint32
	j           *journal // nil → memory only
}

func newLeases(p *Pool, server net.IP, path string, now time.Time, log *slog.Logger) (*leases, error) {
	l := &leases{
		skip: map[uint32]bool{}, reserved: map[uint32]string{}, reservation: map[string]uint32{},
		leaseTime: p.LeaseTime, byMAC: map[string]*lease{}, byIP: map[uint32]*lease{},
	}
	l.start, _ = ipv4(p.Start)
	l.end, _ = ipv4(p.End)
	l.mask, _ = ipv4(net.IP(p.Netmask))
	l.netw = l.start & l.mask
	for _, ip := range []net.IP{server, p.Router} {
		if u, ok := ipv4(ip); ok {
			l.skip[u] = true
		}
	}
	for mac, ip := range p.Reservations {
		u, _ := ipv4(ip)
		l.reserved[u] = mac
		l.reservation[mac] = u
	}
	if path == "" {
		return l, nil
	}
	lock, err := lockLeaseFile(path)
	if err != nil {
		return nil, err
	}
	recs, err := loadJournal(path, log)
	if err != nil {
		lock.Close()
		return nil, err
	}
	for _, r := range recs {
		u, ok := ipv4(net.ParseIP(r.IP))
		if !ok {
			continue
		}
		if old := l.byIP[u]; old != nil {
			l.drop(old)
		}
		st := bound
		switch r.State {
		case "bound":
		case "declined":
			st = declined
		default:
			continue
		}
		if !r.Expires.After(now) {
			continue
		}
		if r.MAC != "" {
			if old := l.byMAC[r.MAC]; old != nil {
				l.drop(old)
			}
		}
		l.set(&lease{mac: r.MAC, ip: u, state: st, expires: r.Expires})
	}
	l.j, err = openJournal(path, lock, l.snapshot, l.live)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return l, nil
}

func (l *leases) set(le *lease) {
	l.byIP[le.ip] = le
	if le.mac != "" {
		l.byMAC[le.mac] = le
	}
}

func (l *leases) drop(le *lease) {
	if l.byIP[le.ip] == le {
		delete(l.byIP, le.ip)
	}
	if le.mac != "" && l.byMAC[le.mac] == le {
		delete(l.byMAC, le.mac)
	}
}

func (l *leases) snapshot() []record {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]record, 0, len(l.byIP))
	for _, le := range l.byIP {
		if le.state != offered {
			out = append(out, le.record())
		}
	}
	return out
}

func (l *leases) live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byIP)
}

func (le *lease) record() record {
	return record{IP: fromU32(le.ip).String(), MAC: le.mac, State: stateNames[le.state], Expires: le.expires.UTC()}
}

func (l *leases) inSubnet(u uint32) bool { return u&l.mask == l.netw }

// usable reports whether mac may have address u now; l.mu is held.
func (l *leases) usable(u uint32, mac string, now time.Time) bool {
	if !l.inSubnet(u) || l.skip[u] || u&^l.mask == 0 || u|l.mask == ^uint32(0) {
		return false
	}
	if owner, ok := l.reserved[u]; ok {
		if owner != mac {
			return false
		}
	} else if u < l.start || u > l.end {
		return false
	}
	if r, ok := l.reservation[mac]; ok && r != u {
		return false
	}
	le := l.byIP[u]
	return le == nil || !le.expires.After(now) || (le.mac == mac && le.state != declined)
}

// offer picks an address for mac (its lease, its reservation, the address
// it asks for, or the next free one) and sets it aside.
func (l *leases) offer(mac string, want net.IP, now time.Time) (net.IP, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pick, found := uint32(0), false
	if r, ok := l.reservation[mac]; ok {
		if !l.usable(r, mac, now) {
			return nil, fmt.Errorf("reserved address %s is held by another client", fromU32(r))
		}
		pick, found = r, true
	} else if le := l.byMAC[mac]; le != nil && l.usable(le.ip, mac, now) {
		pick, found = le.ip, true
	} else if u, ok := ipv4(want); ok && l.usable(u, mac, now) {
		pick, found = u, true
	} else {
		size := l.end - l.start + 1
		for i := uint32(0); i < size && !found; i++ {
			u := l.start + (l.next+i)%size
			if l.usable(u, mac, now) {
				pick, found = u, true
				l.next = (u - l.start + 1) % size
			}
		}
	}
	if !found {
		return nil, ErrPoolFull
	}
	if le := l.byMAC[mac]; le != nil && le.ip == pick && le.state == bound && le.expires.After(now) {
		return fromU32(pick), nil // keep the bound lease as it is
	}
	l.claim(mac, pick, offered, now.Add(offerHold))
	return fromU32(pick), nil
}

// claim gives u to mac, dropping whatever held u and mac's other address.
func (l *leases) claim(mac string, u uint32, st leaseState, exp time.Time) (freed []uint32) {
	if old := l.byIP[u]; old != nil {
		l.drop(old)
	}
	if old := l.byMAC[mac]; old != nil {
		l.drop(old)
		if old.ip != u && old.state == bound {
			freed = append(freed, old.ip)
		}
	}
	l.set(&lease{mac: mac, ip: u, state: st, expires: exp})
	return freed
}

// bind confirms ip for mac (REQUEST). It returns why not when the answer
// is a NAK, and persists the lease before returning.
func (l *leases) bind(mac string, ip net.IP, now time.Time) (nak string, err error) {
	u, ok := ipv4(ip)
	if !ok {
		return "no address requested", nil
	}
	l.mu.Lock()
	if !l.inSubnet(u) {
		l.mu.Unlock()
		return fmt.Sprintf("%s is not on this network", ip), nil
	}
	if !l.usable(u, mac, now) {
		l.mu.Unlock()
		return fmt.Sprintf("%s is not available to this client", ip), nil
	}
	exp := now.Add(l.leaseTime)
	freed := l.claim(mac, u, bound, exp)
	rec := l.byIP[u].record()
	l.mu.Unlock()
	return "", l.persist(rec, freed...)
}

func (l *leases) persist(r record, freed ...uint32) error {
	if l.j == nil {
		return nil
	}
	for _, u := range freed {
		if err := l.j.add(record{IP: fromU32(u).String(), State: "free"}); err != nil {
			return err
		}
	}
	return l.j.add(r)
}

// release frees ip if mac holds it.
func (l *leases) release(mac string, ip net.IP) error {
	u, _ := ipv4(ip)
	l.mu.Lock()
	le := l.byIP[u]
	if le == nil || le.mac != mac || le.state == declined {
		l.mu.Unlock()
		return nil
	}
	l.drop(le)
	l.mu.Unlock()
	return l.persist(record{IP: fromU32(u).String(), State: "free"})
}

// decline marks ip as in use by someone we do not know, for a lease time.
func (l *leases) decline(mac string, ip net.IP, now time.Time) error {
	u, ok := ipv4(ip)
	l.mu.Lock()
	if !ok || !l.inSubnet(u) {
		l.mu.Unlock()
		return nil
	}
	if le := l.byIP[u]; le != nil && le.mac != mac && le.expires.After(now) {
		l.mu.Unlock()
		return nil // someone else's lease: not this client's to decline
	}
	l.claim("", u, declined, now.Add(l.leaseTime))
	if le := l.byMAC[mac]; le != nil && le.ip == u {
		l.drop(le)
	}
	rec := l.byIP[u].record()
	l.mu.Unlock()
	return l.persist(rec)
}

// bound returns mac's current lease, if any.
func (l *leases) lookup(mac string, now time.Time) (net.IP, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le := l.byMAC[mac]
	if le == nil || le.state != bound || !le.expires.After(now) {
		return nil, time.Time{}, false
	}
	return fromU32(le.ip), le.expires, true
}

func (l *leases) close() error {
	if l.j == nil {
		return nil
	}
	return l.j.close()
}
