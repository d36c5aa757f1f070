package timeline

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestLogRecordsPerMachine(t *testing.T) {
	t.Parallel()
	var l Log
	a, b := mac("52:54:00:00:00:0a"), mac("52:54:00:00:00:0b")
	l.Record(Event{MAC: b, Kind: DHCPDiscover})
	l.Record(Event{MAC: a, Kind: DHCPDiscover, Arch: "bios"})
	l.Record(Event{MAC: a, Kind: DHCPOffer, IP: net.IPv4(10, 77, 0, 10)})
	l.Record(Event{MAC: a, Kind: TFTP, Detail: "undionly.kpxe"})

	ms := l.Machines()
	if len(ms) != 2 || ms[0].MAC.String() != a.String() || ms[1].MAC.String() != b.String() {
		t.Fatalf("Machines() = %v, want a then b", ms)
	}
	if ms[0].Events != 3 || ms[0].Last.Kind != TFTP || ms[0].FirstSeen.IsZero() {
		t.Errorf("machine a summary = %+v", ms[0])
	}
	ev := l.Events(a)
	if got := fmt.Sprint(Kinds(ev)); got != "[dhcp-discover dhcp-offer tftp]" {
		t.Errorf("Events(a) kinds = %s", got)
	}
	if ev[0].Time.IsZero() {
		t.Error("zero Time was not filled in")
	}
	if l.Events(mac("52:54:00:00:00:0c")) != nil {
		t.Error("unknown machine has events")
	}
	// The returned slice is a copy.
	ev[0].Kind = Report
	if l.Events(a)[0].Kind != DHCPDiscover {
		t.Error("Events returned the Log's own slice")
	}
}

func TestLogBounded(t *testing.T) {
	t.Parallel()
	l := Log{PerMachine: 5}
	m := mac("52:54:00:00:00:01")
	for i := range 12 {
		l.Record(Event{MAC: m, Kind: TFTP, Detail: fmt.Sprint(i)})
	}
	ev := l.Events(m)
	if len(ev) != 5 || ev[0].Detail != "7" || ev[4].Detail != "11" {
		t.Fatalf("bounded events = %v", ev)
	}
}

func TestLogMaxMachines(t *testing.T) {
	t.Parallel()
	l := Log{MaxMachines: 3}
	t0 := time.Now()
	for i := range 5 {
		l.Record(Event{Time: t0.Add(time.Duration(i) * time.Second), MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}, Kind: DHCPDiscover})
	}
	// Machine 2 speaks again: it is now the most recent, 3 the oldest.
	l.Record(Event{Time: t0.Add(10 * time.Second), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Kind: DHCPOffer})
	l.Record(Event{Time: t0.Add(11 * time.Second), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, Kind: DHCPDiscover})
	var got []string
	for _, m := range l.Machines() {
		got = append(got, m.MAC.String())
	}
	if want := "[02:00:00:00:00:02 02:00:00:00:00:04 02:00:00:00:00:09]"; fmt.Sprint(got) != want {
		t.Errorf("machines kept = %v, want %s", got, want)
	}
}

func TestLogConcurrent(t *testing.T) {
	t.Parallel()
	var l Log
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(g)}
			for range 100 {
				l.Record(Event{MAC: m, Kind: Kernel})
				_ = l.Machines()
				_ = l.Events(m)
			}
		}()
	}
	wg.Wait()
	if n := len(l.Machines()); n != 8 {
		t.Fatalf("%d machines, want 8", n)
	}
	for _, m := range l.Machines() {
		if m.Events != 100 {
			t.Errorf("%s: %d events, want 100", m.MAC, m.Events)
		}
	}
}

func TestInOrder(t *testing.T) {
	t.Parallel()
	ev := []Event{{Kind: DHCPDiscover}, {Kind: DHCPOffer}, {Kind: TFTP}, {Kind: DHCPDiscover}, {Kind: Script}, {Kind: Kernel}, {Kind: Initrd}}
	if miss, ok := InOrder(ev, DHCPDiscover, TFTP, Script, Kernel, Initrd); !ok {
		t.Errorf("full sequence reported missing %q", miss)
	}
	if miss, ok := InOrder(ev, Kernel, Script); ok || miss != Script {
		t.Errorf("InOrder(kernel, script) = %q %v, want script false", miss, ok)
	}
	if miss, ok := InOrder(ev, Enroll); ok || miss != Enroll {
		t.Errorf("InOrder(enroll) = %q %v", miss, ok)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	e := Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), MAC: mac("52:54:00:12:34:56"), IP: net.ParseIP("10.77.0.5"), Arch: "efi-x64", Kind: Initrd, Detail: "worker-initrd.img"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mac":"52:54:00:12:34:56","time":"2026-01-02T03:04:05Z","ip":"10.77.0.5","arch":"efi-x64","kind":"initrd","detail":"worker-initrd.img"}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant   %s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.MAC.String() != e.MAC.String() || !back.IP.Equal(e.IP) || back.Kind != e.Kind || !back.Time.Equal(e.Time) {
		t.Errorf("round trip = %+v", back)
	}
	mb, err := json.Marshal(Machine{MAC: e.MAC, Last: e, Events: 1})
	if err != nil {
		t.Fatal(err)
	}
	var m Machine
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	if m.MAC.String() != e.MAC.String() || m.Last.Kind != Initrd || m.Events != 1 {
		t.Errorf("machine round trip = %s → %+v", mb, m)
	}
	if err := json.Unmarshal([]byte(`{"mac":"zz"}`), &back); err == nil {
		t.Error("bad mac accepted")
	}
}

// TestLogRingOrder checks Events against the plain model (keep the newest
// PerMachine events, oldest first) after every Record, also when PerMachine
// changes while the ring is full and wrapped.
func TestLogRingOrder(t *testing.T) {
	t.Parallel()
	var l Log
	m := mac("52:54:00:00:00:02")
	var model []string
	i := 0
	for _, bound := range []int{4, 4, 7, 3, 3, 1, 5, 2} {
		l.PerMachine = bound
		for range 2*bound + 1 {
			d := fmt.Sprint(i)
			i++
			l.Record(Event{MAC: m, Kind: TFTP, Detail: d})
			model = append(model, d)
			if len(model) > bound {
				model = model[len(model)-bound:]
			}
			ev := l.Events(m)
			got := make([]string, len(ev))
			for j, e := range ev {
				got[j] = e.Detail
			}
			if fmt.Sprint(got) != fmt.Sprint(model) {
				t.Fatalf("PerMachine %d after event %s: events %v, want %v", bound, d, got, model)
			}
			if n := l.Machines()[0].Events; n != len(model) {
				t.Fatalf("Machines().Events = %d, want %d", n, len(model))
			}
		}
	}
}
