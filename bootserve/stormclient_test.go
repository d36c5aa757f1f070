package bootserve_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/pin/tftp/v3"

	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// The simulated PXE clients of BenchmarkBootStorm.

// stormResult is one storm against one server stack.
type stormResult struct {
	wall      time.Duration
	failed    int
	serverCPU time.Duration // CPU time of the server processes (0: in this process)
}

// storm runs n simulated PXE clients at once from the namespace cli against
// the server in srv, logs where the time went under label, and returns
// the wall time and the number of clients that failed. The clients'
// goroutines carry the profiler label side=client.
func storm(b *testing.B, srv, cli *netns.NS, n int, scriptURL, label string) stormResult {
	var conn *net.UDPConn
	if err := cli.Do(func() (err error) {
		conn, err = server4.NewIPv4UDPConn("eth0", &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	// One socket stands in for n NICs: give it their room, or the burst
	// of n OFFERs overflows it (48 drops at N=500 once the server kept
	// up) and the simulator, not a server, causes the retransmits.
	if _, err := sockbuf.Grow(conn, sockbuf.Default); err != nil {
		b.Fatal(err)
	}
	d := &dhcpMux{conn: conn, waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	go d.read()
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 1024,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = cli.Do(func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	defer hc.CloseIdleConnections()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	var firstErr error
	st := &stageTimes{}
	probe := startProbe(srv, cli)
	start := time.Now()
	pprof.Do(context.Background(), pprof.Labels("side", "client"), func(context.Context) {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mac := net.HardwareAddr{0x02, 0x77, 0, 0, byte(i >> 8), byte(i)}
				if err := pxeClient(cli, d, hc, mac, scriptURL, st); err != nil {
					mu.Lock()
					failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", mac, err)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
	el := time.Since(start)
	if firstErr != nil {
		b.Logf("%s: first failure: %v", label, firstErr)
	}
	b.Logf("%s, N=%d, %.2fs: %s; DHCP retransmits %d, NAKs %d\n\t%s", label, n, el.Seconds(), st.String(n-failed),
		d.retransmits.Load(), d.naks.Load(), probe.stop())
	return stormResult{wall: el, failed: failed}
}

// dhcpMux shares one client socket among the simulated clients.
type dhcpMux struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	// retransmits counts requests sent again after a timeout; naks the
	// NAKs received.
	retransmits, naks atomic.Int64
}

func (d *dhcpMux) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		d.mu.Lock()
		ch := d.waiting[m.TransactionID]
		d.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// errNak is a DHCPNAK: start over with a DISCOVER, as clients do.
var errNak = fmt.Errorf("DHCP NAK")

// exchange sends req (broadcast) until a reply of type want (or a NAK)
// arrives.
func (d *dhcpMux) exchange(req *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	d.mu.Lock()
	d.waiting[req.TransactionID] = ch
	d.mu.Unlock()
	defer func() { d.mu.Lock(); delete(d.waiting, req.TransactionID); d.mu.Unlock() }()
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	for try := range 6 {
		if try > 0 {
			d.retransmits.Add(1)
		}
		if _, err := d.conn.WriteTo(req.ToBytes(), dst); err != nil {
			return nil, err
		}
		timeout := time.NewTimer(time.Duration(1<<min(try, 3)) * time.Second)
		for {
			select {
			case m := <-ch:
				if m.MessageType() == dhcpv4.MessageTypeNak {
					d.naks.Add(1)
					timeout.Stop()
					return nil, errNak
				}
				if m.MessageType() != want {
					continue
				}
				timeout.Stop()
				return m, nil
			case <-timeout.C:
			}
			break
		}
	}
	return nil, fmt.Errorf("no DHCP %s", want)
}

// stageTimes sums per-stage durations over the clients of one storm.
type stageTimes struct {
	mu               sync.Mutex
	dhcp, tftp, http time.Duration
	maxDHCP, maxTFTP time.Duration
	maxHTTP          time.Duration
}

func (s *stageTimes) add(dh, tf, ht time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dhcp, s.tftp, s.http = s.dhcp+dh, s.tftp+tf, s.http+ht
	s.maxDHCP, s.maxTFTP, s.maxHTTP = max(s.maxDHCP, dh), max(s.maxTFTP, tf), max(s.maxHTTP, ht)
}

func (s *stageTimes) String(n int) string {
	avg := func(d time.Duration) string { return (d / time.Duration(max(n, 1))).Round(time.Millisecond).String() }
	return fmt.Sprintf("per client avg/max: DHCP %s/%s, TFTP %s/%s, HTTP %s/%s", avg(s.dhcp), s.maxDHCP.Round(time.Millisecond),
		avg(s.tftp), s.maxTFTP.Round(time.Millisecond), avg(s.http), s.maxHTTP.Round(time.Millisecond))
}

func pxeClient(ns *netns.NS, d *dhcpMux, hc *http.Client, mac net.HardwareAddr, scriptURL string, st *stageTimes) error {
	t0 := time.Now()
	opts := []dhcpv4.Modifier{dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}
	var offer, ack *dhcpv4.DHCPv4
	for attempt := 0; ; attempt++ {
		disc, err := dhcpv4.NewDiscovery(mac, opts...)
		if err != nil {
			return err
		}
		if offer, err = d.exchange(disc, dhcpv4.MessageTypeOffer); err != nil {
			return err
		}
		req, err := dhcpv4.NewRequestFromOffer(offer, opts...)
		if err != nil {
			return err
		}
		ack, err = d.exchange(req, dhcpv4.MessageTypeAck)
		if err == errNak && attempt < 4 {
			continue // the address went to another client: start over
		}
		if err != nil {
			return err
		}
		break
	}
	t1 := time.Now()
	file := ack.BootFileName
	if file == "" {
		file = offer.BootFileName
	}
	next := ack.ServerIPAddr
	if next == nil || next.IsUnspecified() {
		next = net.IPv4(10, 77, 0, 1)
	}
	// TFTP: the client socket must be made inside the namespace.
	var wt io.WriterTo
	err := ns.Do(func() error {
		c, err := tftp.NewClient(net.JoinHostPort(next.String(), "69"))
		if err != nil {
			return err
		}
		c.SetBlockSize(1468)
		c.SetTimeout(2 * time.Second)
		c.SetRetries(8)
		wt, err = c.Receive(file, "octet")
		return err
	})
	if err != nil {
		return fmt.Errorf("tftp %s: %w", file, err)
	}
	if _, err := wt.WriteTo(io.Discard); err != nil {
		return fmt.Errorf("tftp %s: %w", file, err)
	}
	t2 := time.Now()
	u := scriptURL
	if strings.Contains(u, "%s") {
		u = fmt.Sprintf(u, mac)
	}
	script, err := httpGet(hc, u, true)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(script))
	fetched := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "kernel":
			_, err = httpGet(hc, f[1], false)
		case len(f) >= 2 && f[0] == "initrd":
			_, err = httpGet(hc, f[len(f)-1], false)
		default:
			continue
		}
		if err != nil {
			return err
		}
		fetched++
	}
	if fetched != 2 {
		return fmt.Errorf("script from %s named %d files, want kernel and initrd:\n%s", u, fetched, script)
	}
	st.add(t1.Sub(t0), t2.Sub(t1), time.Since(t2))
	return nil
}

func httpGet(hc *http.Client, u string, keep bool) (string, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if keep {
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// Reads as large as the socket has (io.Discard reads 8 KiB at a
	// time): the clients' reads of kernel and initrd were two thirds of
	// the machine's CPU at N=500, taken from the servers under test.
	buf := discardBufs.Get().(*[]byte)
	defer discardBufs.Put(buf)
	for {
		if _, err := resp.Body.Read(*buf); err == io.EOF {
			return "", nil
		} else if err != nil {
			return "", err
		}
	}
}

var discardBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
