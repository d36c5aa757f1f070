package bootserve_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/pin/tftp/v3"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// BenchmarkBootStorm runs N simulated PXE clients at once (N = 50, 200,
// 500), each doing what a BIOS PXE boot does on the wire: DHCP
// discover/offer/request/ack → TFTP undionly.kpxe → HTTP script → kernel
// → initrd. The clients live in one network namespace, the servers in
// another (a veth on a bridge). It reports the completion time and the
// failures against our server and against dnsmasq (DHCP+TFTP, --no-ping)
// + nginx (HTTP), and the ratio of their times (>1: we are faster).
func BenchmarkBootStorm(b *testing.B) {
	if err := netns.Check(); err != nil {
		b.Skipf("network namespaces unavailable: %v", err)
	}
	for _, tool := range []string{"dnsmasq", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed: %v", tool, err)
		}
	}
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err != nil {
		b.Skipf("iPXE not installed (apt-get install ipxe): %v", err)
	}
	art := bootFixture(b)
	ctx := context.Background()
	srv, err := netns.New(ctx, "sbstorm")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := netns.New(ctx, "sbclients")
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	if err := srv.AddBridge("br0", "10.77.0.1/22"); err != nil {
		b.Fatal(err)
	}
	if err := srv.AddVethPeer("v0", "br0", cli, "eth0", "10.77.0.2/22"); err != nil {
		b.Fatal(err)
	}
	// A fresh bridge port and veth drop or delay the first packets for a
	// moment (seen as a 1 s DHCP retry for every client of the first
	// storm): let the link settle before timing anything.
	time.Sleep(2 * time.Second)
	for _, n := range []int{50, 200, 500} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for range b.N {
				stop := startOurStorm(b, srv, art)
				ours, oursFail := storm(b, cli, n, "http://10.77.0.1:8080/boot/%s.ipxe")
				stop()
				stop = startRefStorm(b, srv, art)
				ref, refFail := storm(b, cli, n, "http://10.77.0.1:8081/boot.ipxe")
				stop()
				b.ReportMetric(ours.Seconds(), "s-ours")
				b.ReportMetric(float64(oursFail), "failures-ours")
				b.ReportMetric(ref.Seconds(), "s-dnsmasq+nginx")
				b.ReportMetric(float64(refFail), "failures-ref")
				b.ReportMetric(ref.Seconds()/ours.Seconds(), "x-vs-dnsmasq+nginx")
				b.Logf("boot storm N=%d: ours %.2fs (%d failed), dnsmasq+nginx %.2fs (%d failed): %.2fx",
					n, ours.Seconds(), oursFail, ref.Seconds(), refFail, ref.Seconds()/ours.Seconds())
			}
		})
	}
}

func startOurStorm(b *testing.B, ns *netns.NS, art string) (stop func()) {
	s, err := bootserve.New(bootserve.Config{Interface: "br0", ServerIP: net.IPv4(10, 77, 0, 1).To4(), DHCP: dhcp.ModeFull,
		Pool: &dhcp.Pool{Start: net.IPv4(10, 77, 1, 0).To4(), End: net.IPv4(10, 77, 3, 250).To4(),
			Netmask: net.CIDRMask(22, 32), LeaseTime: time.Hour},
		HTTPAddr: "10.77.0.1:8080", TFTPAddr: "10.77.0.1:69", Artifacts: art, StateDir: b.TempDir(),
		Booter: &bootserve.DirBooter{Dir: art}, Do: ns.Do})
	if err != nil {
		b.Fatal(err)
	}
	if err := ns.Do(s.Listen); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// startRefStorm runs dnsmasq (DHCP + TFTP) and nginx in ns serving the
// same files; the script is static.
func startRefStorm(b *testing.B, ns *netns.NS, art string) (stop func()) {
	dir := b.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	tftpRoot, www := filepath.Join(dir, "tftp"), filepath.Join(dir, "www")
	for _, d := range []string{tftpRoot, www, filepath.Join(dir, "nginx")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	copyTo(b, "/usr/lib/ipxe/undionly.kpxe", filepath.Join(tftpRoot, "undionly.kpxe"))
	copyTo(b, filepath.Join(art, "fixture-kernel"), filepath.Join(www, "fixture-kernel"))
	copyTo(b, filepath.Join(art, "fixture-initrd.img"), filepath.Join(www, "fixture-initrd.img"))
	script := "#!ipxe\nkernel http://10.77.0.1:8081/fixture-kernel initrd=initrd.img console=ttyS0\n" +
		"initrd --name initrd.img http://10.77.0.1:8081/fixture-initrd.img\nboot\n"
	if err := os.WriteFile(filepath.Join(www, "boot.ipxe"), []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dm := ns.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=10.77.1.0,10.77.3.250,255.255.252.0,1h", "--dhcp-lease-max=2000", "--no-ping",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--enable-tftp", "--tftp-root="+tftpRoot, "--tftp-max=1000", "--dhcp-boot=undionly.kpxe,,10.77.0.1")
	var dmOut strings.Builder
	dm.Stdout, dm.Stderr = &dmOut, &dmOut
	nx := filepath.Join(dir, "nginx")
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  server { listen 10.77.0.1:8081; root %[2]s; }
}
`, nx, www)
	if err := os.WriteFile(filepath.Join(nx, "nginx.conf"), []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	ng := ns.Command(ctx, "nginx", "-c", filepath.Join(nx, "nginx.conf"), "-p", nx, "-e", filepath.Join(nx, "error.log"))
	ng.Cancel = func() error { return ng.Process.Signal(syscall.SIGTERM) }
	ng.WaitDelay = 5 * time.Second
	var ngOut strings.Builder
	ng.Stdout, ng.Stderr = &ngOut, &ngOut
	for _, c := range []*exec.Cmd{dm, ng} {
		if err := c.Start(); err != nil {
			cancel()
			b.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // both bind within milliseconds
	return func() {
		cancel()
		_ = dm.Wait()
		_ = ng.Wait()
		if b.Failed() {
			b.Logf("dnsmasq:\n%s\nnginx:\n%s", tailStr(dmOut.String(), 20), ngOut.String())
		}
	}
}

func tailStr(s string, n int) string { return tail(s, n) }

func copyTo(b *testing.B, src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// storm runs n simulated PXE clients at once from ns and returns the wall
// time and the number of clients that failed.
func storm(b *testing.B, ns *netns.NS, n int, scriptURL string) (time.Duration, int) {
	var conn *net.UDPConn
	if err := ns.Do(func() (err error) {
		conn, err = server4.NewIPv4UDPConn("eth0", &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	d := &dhcpMux{conn: conn, waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	go d.read()
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 1024,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = ns.Do(func() error {
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
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mac := net.HardwareAddr{0x02, 0x77, 0, 0, byte(i >> 8), byte(i)}
			if err := pxeClient(ns, d, hc, mac, scriptURL, st); err != nil {
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
	el := time.Since(start)
	if firstErr != nil {
		b.Logf("first failure: %v", firstErr)
	}
	b.Logf("%s: %s", scriptURL, st.String(n-failed))
	return el, failed
}

// dhcpMux shares one client socket among the simulated clients.
type dhcpMux struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
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
		if _, err := d.conn.WriteTo(req.ToBytes(), dst); err != nil {
			return nil, err
		}
		timeout := time.NewTimer(time.Duration(1<<min(try, 3)) * time.Second)
		for {
			select {
			case m := <-ch:
				if m.MessageType() == dhcpv4.MessageTypeNak {
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
	_, err = io.Copy(io.Discard, resp.Body)
	return "", err
}
