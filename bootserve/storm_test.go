package bootserve_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// BenchmarkBootStorm runs N simulated PXE clients at once (N = 50, 200,
// 500), each doing what a BIOS PXE boot does on the wire: DHCP
// discover/offer/request/ack → TFTP undionly.kpxe → HTTP script → kernel
// → initrd. The clients live in one network namespace, the servers in
// another (a veth on a bridge). It reports the completion time, the
// failures and the servers' CPU time against our server (in its own
// process, see stormproc_test.go) and against dnsmasq (DHCP+TFTP,
// --no-ping) + nginx (HTTP), and the ratio of their times (>1: we are
// faster). Each storm logs per-stage times, DHCP retransmits and the
// namespaces' UDP buffer drops (see stormProbe and docs/bootserve.md).
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
				var inproc stormResult
				if os.Getenv(stormInProcessEnv) != "" {
					stop := startOurStorm(b, srv, art)
					inproc = storm(b, srv, cli, n, "http://10.77.0.1:8080/boot/%s.ipxe", "ours, in this process")
					stop()
				}
				stop := startOurStormProcess(b, srv, art)
				ours := storm(b, srv, cli, n, "http://10.77.0.1:8080/boot/%s.ipxe", "ours")
				ours.serverCPU = stop()
				stop = startRefStorm(b, srv, art)
				ref := storm(b, srv, cli, n, "http://10.77.0.1:8081/boot.ipxe", "dnsmasq+nginx")
				ref.serverCPU = stop()
				b.ReportMetric(ours.wall.Seconds(), "s-ours")
				b.ReportMetric(float64(ours.failed), "failures-ours")
				b.ReportMetric(ours.serverCPU.Seconds(), "cpu-s-ours")
				b.ReportMetric(ref.wall.Seconds(), "s-dnsmasq+nginx")
				b.ReportMetric(float64(ref.failed), "failures-ref")
				b.ReportMetric(ref.serverCPU.Seconds(), "cpu-s-ref")
				ratio := ref.wall.Seconds() / ours.wall.Seconds()
				b.ReportMetric(ratio, "x-vs-dnsmasq+nginx")
				if inproc.wall > 0 {
					b.ReportMetric(inproc.wall.Seconds(), "s-ours-inproc")
					b.Logf("boot storm N=%d, our server in the clients' process: %.2fs (%d failed): %.2fx",
						n, inproc.wall.Seconds(), inproc.failed, ref.wall.Seconds()/inproc.wall.Seconds())
				}
				b.Logf("boot storm N=%d: ours %.2fs (%d failed, server CPU %.2fs), dnsmasq+nginx %.2fs (%d failed, server CPU %.2fs): %.2fx",
					n, ours.wall.Seconds(), ours.failed, ours.serverCPU.Seconds(),
					ref.wall.Seconds(), ref.failed, ref.serverCPU.Seconds(), ratio)
			}
		})
	}
}

// stormConfig is our server as the storm runs it: full DHCP on br0.
func stormConfig(art, stateDir string, do func(func() error) error) bootserve.Config {
	return bootserve.Config{Interface: "br0", ServerIP: net.IPv4(10, 77, 0, 1).To4(), DHCP: dhcp.ModeFull,
		Pool: &dhcp.Pool{Start: net.IPv4(10, 77, 1, 0).To4(), End: net.IPv4(10, 77, 3, 250).To4(),
			Netmask: net.CIDRMask(22, 32), LeaseTime: time.Hour},
		HTTPAddr: "10.77.0.1:8080", TFTPAddr: "10.77.0.1:69", Artifacts: art, StateDir: stateDir,
		Booter: &bootserve.DirBooter{Dir: art}, Do: do}
}

// startOurStorm runs our server in this process, next to the simulated
// clients (its goroutines carry the profiler label side=server).
func startOurStorm(b *testing.B, ns *netns.NS, art string) (stop func()) {
	s, err := bootserve.New(stormConfig(art, b.TempDir(), ns.Do))
	if err != nil {
		b.Fatal(err)
	}
	if err := ns.Do(s.Listen); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go pprof.Do(ctx, pprof.Labels("side", "server"), func(ctx context.Context) { done <- s.Run(ctx) })
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// startRefStorm runs dnsmasq (DHCP + TFTP) and nginx in ns serving the
// same files; the script is static.
func startRefStorm(b *testing.B, ns *netns.NS, art string) (stop func() (cpu time.Duration)) {
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
	return func() time.Duration {
		cancel()
		_ = dm.Wait()
		_ = ng.Wait()
		if b.Failed() {
			b.Logf("dnsmasq:\n%s\nnginx:\n%s", tailStr(dmOut.String(), 20), ngOut.String())
		}
		return procCPU(dm.ProcessState) + procCPU(ng.ProcessState)
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
