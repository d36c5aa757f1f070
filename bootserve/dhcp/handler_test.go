package dhcp

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

var (
	serverIP = net.IPv4(10, 77, 0, 1).To4()
	testMAC  = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	otherMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}
)

func testPool() *Pool {
	return &Pool{
		Start: net.IPv4(10, 77, 0, 100), End: net.IPv4(10, 77, 0, 110),
		Netmask: net.CIDRMask(24, 32), Router: serverIP, DNS: []net.IP{serverIP},
		LeaseTime: time.Hour,
	}
}

func testConfig(mode Mode) Config {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Config{
		Mode:     mode,
		ServerIP: serverIP,
		Boot: Boot{
			HTTPBase: "http://10.77.0.1:8080",
			Overrides: Table{
				otherMAC.String(): {File: "custom.efi", Script: "http://10.77.0.1:8080/special.ipxe"},
			},
		},
		Pool: testPool(),
		Now:  func() time.Time { return t0 },
	}
}

func pxeMods(vc string, arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vc)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
	}
}

var kinds = map[string][]dhcpv4.Modifier{
	"plain":    nil,
	"vendor":   {dhcpv4.WithOption(dhcpv4.OptClassIdentifier("udhcp 1.36.1"))},
	"bios":     pxeMods("PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC),
	"efi7":     pxeMods("PXEClient:Arch:00007:UNDI:003016", iana.EFI_X86_64),
	"efi9":     pxeMods("PXEClient:Arch:00009:UNDI:003016", iana.EFI_BC),
	"http16":   pxeMods("HTTPClient:Arch:00016:UNDI:003001", iana.EFI_X86_64_HTTP),
	"arm64":    pxeMods("PXEClient:Arch:00011:UNDI:003000", iana.EFI_ARM64),
	"ipxeBIOS": append(pxeMods("PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))),
	"ipxeEFI":  append(pxeMods("PXEClient:Arch:00007:UNDI:003016", iana.EFI_X86_64), dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{0xb1, 1, 1})),
	"ipxeRFC":  append(pxeMods("PXEClient:Arch:00000:UNDI:002001", iana.INTEL_X86PC), dhcpv4.WithUserClass("iPXE", true)),
	"vcOnly":   {dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016"))},
	"noArch":   {dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))},
}

func discover(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newHandler(t testing.TB, cfg Config) *Handler {
	t.Helper()
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

const script = "http://10.77.0.1:8080/boot/52:54:00:12:34:56.ipxe"

// TestDiscoverTable covers every client kind in proxy and full mode.
func TestDiscoverTable(t *testing.T) {
	type want struct {
		answer bool   // any reply
		file   string // "" → no boot file
		arch   string
		http   bool // vendor class HTTPClient in the reply
	}
	cases := []struct {
		kind  string
		mac   net.HardwareAddr
		proxy want
		full  want
	}{
		{"plain", testMAC, want{}, want{answer: true}},
		{"vendor", testMAC, want{}, want{answer: true}},
		{"bios", testMAC, want{true, "undionly.kpxe", "bios", false}, want{true, "undionly.kpxe", "bios", false}},
		{"efi7", testMAC, want{true, "ipxe.efi", "efi-x64", false}, want{true, "ipxe.efi", "efi-x64", false}},
		{"efi9", testMAC, want{true, "ipxe.efi", "efi-x64", false}, want{true, "ipxe.efi", "efi-x64", false}},
		{"http16", testMAC, want{true, "http://10.77.0.1:8080/ipxe.efi", "efi-x64-http", true}, want{true, "http://10.77.0.1:8080/ipxe.efi", "efi-x64-http", true}},
		{"arm64", testMAC, want{}, want{answer: true}},
		{"ipxeBIOS", testMAC, want{true, script, "bios", false}, want{true, script, "bios", false}},
		{"ipxeEFI", testMAC, want{true, script, "efi-x64", false}, want{true, script, "efi-x64", false}},
		{"ipxeRFC", testMAC, want{true, script, "bios", false}, want{true, script, "bios", false}},
		{"vcOnly", testMAC, want{true, "ipxe.efi", "efi-x64", false}, want{true, "ipxe.efi", "efi-x64", false}},
		{"noArch", testMAC, want{true, "undionly.kpxe", "bios", false}, want{true, "undionly.kpxe", "bios", false}},
		{"bios", otherMAC, want{true, "custom.efi", "bios", false}, want{true, "custom.efi", "bios", false}},
		{"ipxeEFI", otherMAC, want{true, "http://10.77.0.1:8080/special.ipxe", "efi-x64", false}, want{true, "http://10.77.0.1:8080/special.ipxe", "efi-x64", false}},
	}
	for _, mode := range []Mode{ModeProxy, ModeFull, ModeOff} {
		for _, tc := range cases {
			t.Run(string(mode)+"/"+tc.kind+"/"+tc.mac.String(), func(t *testing.T) {
				t.Parallel()
				var log timeline.Log
				cfg := testConfig(mode)
				cfg.Recorder = &log
				h := newHandler(t, cfg)
				w := tc.full
				if mode == ModeProxy {
					w = tc.proxy
				} else if mode == ModeOff {
					w = want{}
				}
				req := discover(t, tc.mac, kinds[tc.kind]...)
				resp := h.Handle(context.Background(), req, false)
				if (resp != nil) != w.answer {
					t.Fatalf("answered=%v, want %v (reply %v)", resp != nil, w.answer, resp)
				}
				if resp == nil {
					return
				}
				checkOffer(t, mode, req, resp)
				if got := resp.BootFileNameOption(); got != w.file {
					t.Errorf("option 67 = %q, want %q", got, w.file)
				}
				if resp.BootFileName != w.file {
					t.Errorf("file field = %q, want %q", resp.BootFileName, w.file)
				}
				vc := resp.ClassIdentifier()
				switch {
				case w.file == "" && vc != "":
					t.Errorf("vendor class %q in a reply without boot file", vc)
				case w.file != "" && w.http && vc != "HTTPClient":
					t.Errorf("vendor class %q, want HTTPClient", vc)
				case w.file != "" && !w.http && vc != "PXEClient":
					t.Errorf("vendor class %q, want PXEClient", vc)
				}
				opt43 := resp.Options.Get(dhcpv4.OptionVendorSpecificInformation)
				wantOpt43 := w.file != "" && !w.http && !strings.HasPrefix(tc.kind, "ipxe")
				if (opt43 != nil) != wantOpt43 {
					t.Errorf("option 43 = %x, want present=%v", opt43, wantOpt43)
				}
				if w.file != "" && !bytes.Equal(resp.Options.Get(dhcpv4.OptionClientMachineIdentifier), req.Options.Get(dhcpv4.OptionClientMachineIdentifier)) {
					t.Errorf("option 97 not echoed")
				}
				evs := log.Events(tc.mac)
				if len(evs) != 2 || evs[0].Kind != timeline.DHCPDiscover || evs[1].Kind != timeline.DHCPOffer {
					t.Fatalf("timeline = %+v, want discover, offer", evs)
				}
				if w.arch != "" && evs[1].Arch != w.arch {
					t.Errorf("event arch %q, want %q", evs[1].Arch, w.arch)
				}
				if evs[1].Detail != w.file {
					t.Errorf("offer event detail %q, want %q", evs[1].Detail, w.file)
				}
			})
		}
	}
}

func checkOffer(t *testing.T, mode Mode, req, resp *dhcpv4.DHCPv4) {
	t.Helper()
	if resp.MessageType() != dhcpv4.MessageTypeOffer || resp.OpCode != dhcpv4.OpcodeBootReply {
		t.Fatalf("reply type %s op %s, want OFFER reply", resp.MessageType(), resp.OpCode)
	}
	if resp.TransactionID != req.TransactionID || !bytes.Equal(resp.ClientHWAddr, req.ClientHWAddr) {
		t.Errorf("xid/chaddr not copied")
	}
	if !resp.ServerIdentifier().Equal(serverIP) {
		t.Errorf("server identifier %s", resp.ServerIdentifier())
	}
	if mode == ModeProxy {
		if !resp.YourIPAddr.IsUnspecified() || resp.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
			t.Errorf("proxy offer carries an address: yiaddr %s", resp.YourIPAddr)
		}
		if !resp.ServerIPAddr.Equal(serverIP) {
			t.Errorf("siaddr %s, want %s", resp.ServerIPAddr, serverIP)
		}
		return
	}
	u, _ := ipv4(resp.YourIPAddr)
	if u < 0x0a4d0064 || u > 0x0a4d006e {
		t.Errorf("yiaddr %s outside the pool", resp.YourIPAddr)
	}
	if resp.IPAddressLeaseTime(0) != time.Hour || resp.SubnetMask().String() != "ffffff00" ||
		len(resp.Router()) != 1 || len(resp.DNS()) != 1 {
		t.Errorf("address options missing: %s", resp.Summary())
	}
	// Round trip through the wire format.
	if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
		t.Errorf("reply does not parse: %v", err)
	}
}

// TestProxyFollowUp: the request to the site's server is not ours; the
// request on port 4011 gets the boot file and no address.
func TestProxyFollowUp(t *testing.T) {
	var log timeline.Log
	cfg := testConfig(ModeProxy)
	cfg.Recorder = &log
	h := newHandler(t, cfg)
	ctx := context.Background()
	siteServer := net.IPv4(10, 77, 0, 254)
	req, _ := dhcpv4.New(append(kinds["bios"],
		dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(siteServer)),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 50))))...)
	if resp := h.Handle(ctx, req, false); resp != nil {
		t.Fatalf("proxy answered a REQUEST for the site server: %s", resp.Summary())
	}
	pxeReq, _ := dhcpv4.New(append(kinds["bios"],
		dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 50)))...)
	resp := h.Handle(ctx, pxeReq, true)
	if resp == nil || resp.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("port 4011 request: reply %v, want ACK", resp)
	}
	if resp.BootFileName != "undionly.kpxe" || !resp.YourIPAddr.IsUnspecified() || !resp.ClientIPAddr.Equal(net.IPv4(10, 77, 0, 50)) {
		t.Errorf("4011 ack: %s", resp.Summary())
	}
	if plain, _ := dhcpv4.New(dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)); h.Handle(ctx, plain, true) != nil {
		t.Errorf("port 4011 answered a non-PXE client")
	}
	var kinds []timeline.Kind
	for _, e := range log.Events(testMAC) {
		kinds = append(kinds, e.Kind)
	}
	want := []timeline.Kind{timeline.DHCPRequest, timeline.DHCPRequest, timeline.DHCPAck}
	if len(kinds) != len(want) {
		t.Fatalf("timeline %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("timeline %v, want %v", kinds, want)
		}
	}
}

// TestSnponly: the UEFI file is configurable.
func TestSnponly(t *testing.T) {
	cfg := testConfig(ModeProxy)
	cfg.Boot.EFIFile = "snponly.efi"
	h := newHandler(t, cfg)
	resp := h.Handle(context.Background(), discover(t, testMAC, kinds["efi7"]...), false)
	if resp == nil || resp.BootFileName != "snponly.efi" {
		t.Fatalf("reply %v, want snponly.efi", resp)
	}
	resp = h.Handle(context.Background(), discover(t, testMAC, kinds["http16"]...), false)
	if resp == nil || resp.BootFileNameOption() != "http://10.77.0.1:8080/snponly.efi" {
		t.Fatalf("reply %v, want the HTTP URL of snponly.efi", resp)
	}
}

func TestIgnoreOverride(t *testing.T) {
	cfg := testConfig(ModeProxy)
	cfg.Boot.Overrides = Table{testMAC.String(): {Ignore: true}}
	h := newHandler(t, cfg)
	if resp := h.Handle(context.Background(), discover(t, testMAC, kinds["bios"]...), false); resp != nil {
		t.Fatalf("ignored machine got %s", resp.Summary())
	}
}

func TestConfigErrors(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"mode":      func(c *Config) { c.Mode = "half" },
		"server":    func(c *Config) { c.ServerIP = nil },
		"httpbase":  func(c *Config) { c.Boot.HTTPBase = "10.0.0.1" },
		"nopool":    func(c *Config) { c.Pool = nil },
		"range":     func(c *Config) { c.Pool.Start, c.Pool.End = c.Pool.End, c.Pool.Start },
		"cross":     func(c *Config) { c.Pool.End = net.IPv4(10, 78, 0, 1) },
		"mask":      func(c *Config) { c.Pool.Netmask = nil },
		"lease":     func(c *Config) { c.Pool.LeaseTime = time.Second },
		"resMAC":    func(c *Config) { c.Pool.Reservations = map[string]net.IP{"zz": serverIP} },
		"resSubnet": func(c *Config) { c.Pool.Reservations = map[string]net.IP{testMAC.String(): net.IPv4(10, 9, 0, 1)} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(ModeFull)
			mutate(&cfg)
			if _, err := NewHandler(cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
	if _, err := NewHandler(Config{Mode: ModeOff}); err != nil {
		t.Fatalf("off mode needs nothing: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(ModeProxy)
	cfg.Registerer = reg
	h := newHandler(t, cfg)
	ctx := context.Background()
	for _, k := range []string{"bios", "bios", "efi7", "plain"} {
		h.Handle(ctx, discover(t, testMAC, kinds[k]...), false)
	}
	// A second handler on the same registry shares the counters.
	h2 := newHandler(t, cfg)
	h2.Handle(ctx, discover(t, testMAC, kinds["efi9"]...), false)
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"swarmboot_dhcp_offers_total,arch=bios,mode=proxy":    2,
		"swarmboot_dhcp_offers_total,arch=efi-x64,mode=proxy": 2,
		"swarmboot_dhcp_received_total,type=DISCOVER":         5,
		"swarmboot_dhcp_replies_total,type=OFFER":             4,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
}

// TestPacketLogger: every line about a packet carries mac and xid.
func TestPacketLogger(t *testing.T) {
	var buf bytes.Buffer
	cfg := testConfig(ModeProxy)
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHandler(t, cfg)
	ctx := context.Background()
	req := discover(t, testMAC, kinds["bios"]...)
	h.Handle(ctx, req, false)
	h.Handle(ctx, discover(t, testMAC, kinds["arm64"]...), false) // not offered: says why
	h.Handle(ctx, discover(t, testMAC), false)                    // ignored: debug line
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 log lines, got:\n%s", buf.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["mac"] != testMAC.String() || m["xid"] == nil || m["xid"] == "" {
			t.Errorf("log line without mac/xid: %s", l)
		}
	}
	if !strings.Contains(lines[0], req.TransactionID.String()) || !strings.Contains(lines[0], "undionly.kpxe") {
		t.Errorf("offer line %s lacks the xid or the file", lines[0])
	}
}
