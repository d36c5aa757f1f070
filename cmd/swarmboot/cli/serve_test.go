package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/httpboot"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

func TestServeConfigLayers(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "boot.yml")
	if err := os.WriteFile(cfg, []byte(`interface: br-file
dhcp: full
artifacts: /srv/out
http_addr: ":9000"
pool: {start: 10.77.0.100, end: 10.77.0.110, router: 10.77.0.1, lease_time: 1h, reservations: {52-54-00-12-34-56: 10.77.0.10}}
machines:
  52-54-00-12-34-56: {image: manager, args: "swarmboot.role=manager"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWARMBOOT_HTTP_ADDR", ":9100")
	t.Setenv("SWARMBOOT_ARTIFACTS", "")
	cmd := newServeCmd(&Globals{DataDir: dir})
	if err := cmd.Flags().Parse([]string{"--config", cfg, "--interface", "br-flag"}); err != nil {
		t.Fatal(err)
	}
	var f serveFile
	// The flag values live in the command's closure; read them back.
	for name, p := range f.fields() {
		*p = cmd.Flags().Lookup(name).Value.String()
	}
	if err := applyServeConfig(cmd.Flags(), cfg, &f); err != nil {
		t.Fatal(err)
	}
	if f.Interface != "br-flag" || f.DHCP != "full" || f.Artifacts != "/srv/out" || f.HTTPAddr != ":9100" || f.TFTPAddr != ":69" {
		t.Errorf("layered config = %+v", f)
	}
	c, err := f.config(&Globals{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !c.RouterAdverts {
		t.Error("--ipv6-ra auto with --dhcp full did not turn router advertisements on")
	}
	if c.Pool == nil || c.Pool.LeaseTime != time.Hour || !c.Pool.Start.Equal(net.IPv4(10, 77, 0, 100)) ||
		!c.Pool.Reservations["52-54-00-12-34-56"].Equal(net.IPv4(10, 77, 0, 10)) {
		t.Errorf("pool = %+v", c.Pool)
	}
	// Unknown keys are refused with the file name.
	if err := os.WriteFile(cfg, []byte("interfaces: eth0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := applyServeConfig(cmd.Flags(), cfg, &f); err == nil || !strings.Contains(err.Error(), "boot.yml") {
		t.Errorf("unknown key: %v", err)
	}
	f.IPv6RA = "maybe"
	if _, err := f.config(&Globals{DataDir: dir}); err == nil {
		t.Error("bad --ipv6-ra accepted")
	}
	f.IPv6RA = "off"
	f.DHCP = "sometimes"
	if _, err := f.config(&Globals{DataDir: dir}); err == nil {
		t.Error("bad --dhcp accepted")
	}
}

func TestMachinesAndEvents(t *testing.T) {
	tl := &timeline.Log{}
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	tl.Record(timeline.Event{MAC: mac, Kind: timeline.DHCPDiscover, Arch: "bios"})
	tl.Record(timeline.Event{MAC: mac, Kind: timeline.Script, IP: net.IPv4(10, 77, 0, 5), Detail: "worker"})
	s := &httpboot.Server{Timeline: tl, Registry: prometheus.NewRegistry(),
		Booter: httpboot.BooterFunc(func(context.Context, httpboot.Machine) (*httpboot.Boot, error) { return nil, httpboot.ErrUnknown })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, ln) }()
	server := "http://" + ln.Addr().String()
	for range 50 {
		if r, err := http.Get(server + "/healthz"); err == nil {
			r.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"machines", "--server", server}, nil, &out, &errb); code != 0 {
		t.Fatalf("machines: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "52:54:00:12:34:56  10.77.0.5  script") {
		t.Errorf("machines output:\n%s", out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"events", "52-54-00-12-34-56", "--server", server}, nil, &out, &errb); code != 0 {
		t.Fatalf("events: exit %d: %s", code, errb.String())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 ||
		!strings.Contains(lines[1], "dhcp-discover") || !strings.Contains(lines[2], "worker") {
		t.Errorf("events output:\n%s", out.String())
	}
	errb.Reset()
	if code := Main(context.Background(), []string{"events", "52:54:00:00:00:01", "--server", server}, nil, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "not been seen") {
		t.Errorf("unseen machine: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	closedURL := "http://" + bootservetest.FreeAddr(t) // nobody listens there
	if code := Main(context.Background(), []string{"machines", "--server", closedURL}, nil, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "is `swarmboot serve` running") {
		t.Errorf("no server: exit %d, %s", code, errb.String())
	}
}

func TestServeHelpTeaches(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"serve", "--help"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"proxy", "full", "off", "SWARMBOOT_INTERFACE", "swarmboot serve --interface eth1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

// TestServeEndToEnd runs `swarmboot serve --dhcp off` on loopback, asks it
// for a script through HTTP and for the machine list through `swarmboot
// machines`, then stops it through the context.
func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	art, ipxe := bootservetest.Artifacts(t, dir, "worker")
	addr := bootservetest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "serve", "--dhcp", "off", "--server-ip", "127.0.0.1",
			"--http-addr", addr, "--tftp-addr", "127.0.0.1:0", "--artifacts", art, "--ipxe-dir", ipxe}, nil, &out, &errb)
	}()
	base := "http://" + addr
	var body []byte
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/boot/52:54:00:00:00:07.ipxe")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d: %s", code, errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if i > 100 {
			t.Fatalf("serve does not answer: %v\n%s", err, errb.String())
		}
	}
	if !strings.Contains(string(body), "/artifacts/worker-kernel?mac=52:54:00:00:00:07 initrd=initrd.img console=ttyS0") {
		t.Errorf("script:\n%s", body)
	}
	var mout, merr bytes.Buffer
	if code := Main(context.Background(), []string{"machines", "--server", base}, nil, &mout, &merr); code != 0 ||
		!strings.Contains(mout.String(), "52:54:00:00:00:07") {
		t.Errorf("machines: exit %d\n%s%s", code, mout.String(), merr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exit %d after cancel: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}
