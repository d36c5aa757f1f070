package httpboot

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

var (
	known   = mustMAC("52:54:00:00:00:01")
	unknown = mustMAC("52:54:00:00:00:99")
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

type fixture struct {
	url    string
	base   string
	initrd []byte
	tl     *timeline.Log
	srv    *Server
}

func start(t *testing.T, def *Boot) *fixture {
	t.Helper()
	base := t.TempDir()
	art := filepath.Join(base, "out")
	loaders := filepath.Join(base, "ipxe")
	for _, d := range []string{art, loaders} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fx := &fixture{base: base, tl: &timeline.Log{}}
	fx.initrd = make([]byte, 1<<20+7)
	_, _ = rand.Read(fx.initrd)
	write(t, filepath.Join(art, "worker-kernel"), []byte("KERNEL"))
	write(t, filepath.Join(art, "worker-initrd.img"), fx.initrd)
	write(t, filepath.Join(base, "secret"), []byte("SECRET"))
	write(t, filepath.Join(loaders, "ipxe.efi"), []byte("MZ-ipxe"))
	if err := os.Symlink("../secret", filepath.Join(art, "escape")); err != nil {
		t.Fatal(err)
	}
	booter := BooterFunc(func(_ context.Context, m Machine) (*Boot, error) {
		if m.MAC.String() == known.String() {
			return &Boot{Name: "worker", Kernel: "worker-kernel", Initrd: []string{"worker-initrd.img"},
				Cmdline: "console=ttyS0 quiet", Args: "swarmboot.role=worker"}, nil
		}
		return nil, fmt.Errorf("lookup: %w", ErrUnknown)
	})
	fx.srv = &Server{Booter: booter, Default: def, Artifacts: art, Loaders: loaders, Timeline: fx.tl,
		Registry: prometheus.NewRegistry(), RetryAfter: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		fx.srv.Close()
	})
	return fx
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestScriptKnownMachine(t *testing.T) {
	t.Parallel()
	fx := start(t, nil)
	resp, body := get(t, fx.url+"/boot/"+known.String()+".ipxe")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	want := "#!ipxe\n" +
		"echo swarmboot: 52:54:00:00:00:01 boots worker\n" +
		"kernel " + fx.url + "/artifacts/worker-kernel?mac=52:54:00:00:00:01 initrd=initrd.img console=ttyS0 quiet swarmboot.role=worker\n" +
		"initrd --name initrd.img " + fx.url + "/artifacts/worker-initrd.img?mac=52:54:00:00:00:01\n" +
		"boot\n"
	if body != want {
		t.Errorf("script:\n%s\nwant:\n%s", body, want)
	}
	// Dashes in the MAC work too.
	if resp, _ := get(t, fx.url+"/boot/52-54-00-00-00-01.ipxe"); resp.StatusCode != 200 {
		t.Errorf("dashed MAC: status %d", resp.StatusCode)
	}
	// iPXE escapes the colons of ${mac}.
	if resp, _ := get(t, fx.url+"/boot/52%3A54%3A00%3A00%3A00%3A01.ipxe"); resp.StatusCode != 200 {
		t.Errorf("dashed MAC: status %d", resp.StatusCode)
	}
	// Fetch what the script names; the timeline shows every stage.
	get(t, fx.url+"/artifacts/worker-kernel?mac=52:54:00:00:00:01")
	get(t, fx.url+"/artifacts/worker-initrd.img?mac=52:54:00:00:00:01")
	if miss, ok := timeline.InOrder(fx.tl.Events(known), timeline.Script, timeline.Kernel, timeline.Initrd); !ok {
		t.Errorf("timeline lacks %s: %v", miss, timeline.Kinds(fx.tl.Events(known)))
	}
}

func TestScriptUnknownMachine(t *testing.T) {
	t.Parallel()
	fx := start(t, nil)
	resp, body := get(t, fx.url+"/boot/"+unknown.String()+".ipxe")
	if resp.StatusCode != 200 || !strings.Contains(body, "sleep 5\n") ||
		!strings.Contains(body, "chain --replace "+fx.url+"/boot/${mac}.ipxe") {
		t.Errorf("retry script (%d):\n%s", resp.StatusCode, body)
	}
	// The machine is now listed.
	_, list := get(t, fx.url+"/api/machines")
	var ms []timeline.Machine
	if err := json.Unmarshal([]byte(list), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].MAC.String() != unknown.String() || ms[0].Last.Kind != timeline.Script {
		t.Errorf("/api/machines = %s", list)
	}
	_, evs := get(t, fx.url+"/api/machines/"+unknown.String()+"/events")
	var ev []timeline.Event
	if err := json.Unmarshal([]byte(evs), &ev); err != nil || len(ev) != 1 || !strings.Contains(ev[0].Detail, "retry") {
		t.Errorf("events = %s (%v)", evs, err)
	}
	if resp, _ := get(t, fx.url+"/api/machines/52:54:00:00:00:77/events"); resp.StatusCode != 404 {
		t.Errorf("unseen machine events: status %d", resp.StatusCode)
	}
}

func TestScriptSiteDefault(t *testing.T) {
	t.Parallel()
	fx := start(t, &Boot{Name: "default", Kernel: "worker-kernel", Initrd: []string{"worker-initrd.img"}})
	_, body := get(t, fx.url+"/boot/"+unknown.String()+".ipxe")
	if !strings.Contains(body, "boots default\n") || !strings.Contains(body, "kernel "+fx.url+"/artifacts/worker-kernel?mac=52:54:00:00:00:99 initrd=initrd.img\n") {
		t.Errorf("default script:\n%s", body)
	}
}

func TestScriptBadMAC(t *testing.T) {
	t.Parallel()
	fx := start(t, nil)
	for _, p := range []string{"/boot/nope.ipxe", "/boot/52:54:00:00:00:01", "/boot/00:00:00:00:00:00:00:01.ipxe"} {
		if resp, _ := get(t, fx.url+p); resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestArtifactRangeETag(t *testing.T) {
	t.Parallel()
	fx := start(t, nil)
	u := fx.url + "/artifacts/worker-initrd.img"
	resp, body := get(t, u)
	if resp.StatusCode != 200 || body != string(fx.initrd) || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("full GET: status %d, %d bytes", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	resp, body = get(t, u, "Range", "bytes=100-199")
	if resp.StatusCode != 206 || body != string(fx.initrd[100:200]) {
		t.Errorf("range: status %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = get(t, u, "Range", "bytes=-10")
	if resp.StatusCode != 206 || body != string(fx.initrd[len(fx.initrd)-10:]) {
		t.Errorf("suffix range: status %d, %q", resp.StatusCode, body)
	}
	resp, _ = get(t, u, "If-None-Match", etag)
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
	resp, _ = get(t, u, "Range", "bytes=99999999-")
	if resp.StatusCode != 416 {
		t.Errorf("unsatisfiable range: status %d", resp.StatusCode)
	}
	// HEAD gives the length without a body.
	hr, err := http.Head(u)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.ContentLength != int64(len(fx.initrd)) {
		t.Errorf("HEAD length %d", hr.ContentLength)
	}
	// Loaders for UEFI HTTP boot.
	if resp, body := get(t, fx.url+"/ipxe.efi"); resp.StatusCode != 200 || body != "MZ-ipxe" {
		t.Errorf("/ipxe.efi: %d %q", resp.StatusCode, body)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	fx := start(t, nil)
	if resp, body := get(t, fx.url+"/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	get(t, fx.url+"/boot/"+known.String()+".ipxe")
	_, m := get(t, fx.url+"/metrics")
	if !strings.Contains(m, "swarmboot_boots_in_progress 1\n") {
		t.Errorf("metrics lack one boot in progress:\n%s", m)
	}
	get(t, fx.url+"/artifacts/worker-initrd.img?mac="+known.String())
	_, m = get(t, fx.url+"/metrics")
	if !strings.Contains(m, "swarmboot_boots_in_progress 0\n") ||
		!strings.Contains(m, fmt.Sprintf(`swarmboot_http_artifact_bytes_total{kind="initrd"} %g`, float64(len(fx.initrd)))) {
		t.Errorf("metrics after initrd:\n%s", m)
	}
}

// httpTraversal holds raw request paths that must never serve a file
// outside the artifacts directory.
var httpTraversal = []string{
	"/artifacts/../secret", "/artifacts/..%2fsecret", "/artifacts/%2e%2e/secret",
	"/artifacts/%2e%2e%2fsecret", "/artifacts/escape", "/artifacts//etc/passwd",
	"/artifacts/..\\secret", "/artifacts/a/../../secret", "/artifacts/%00", "/artifacts/x%00/../../secret",
	"/artifacts/", "/artifacts/.", "/..%2f..%2fsecret", "/%2e%2e/secret", "/boot/..%2f..%2fsecret",
	"/artifacts/" + strings.Repeat("a/", 200), "/artifacts/..;/secret", "/artifacts/%252e%252e/secret",
}

// TestTraversalCorpus sends each path verbatim on a raw connection (a Go
// client would clean it first).
func TestTraversalCorpus(t *testing.T) {
	t.Parallel()
	fx := start(t, nil)
	addr := strings.TrimPrefix(fx.url, "http://")
	for _, p := range httpTraversal {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Errorf("%s: %v", p, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "SECRET") {
			t.Errorf("%s: status %d body %q", p, resp.StatusCode, b)
		}
	}
}

func FuzzPath(f *testing.F) {
	for _, p := range httpTraversal {
		f.Add(p)
	}
	f.Add("/artifacts/worker-kernel")
	f.Add("/boot/52:54:00:00:00:01.ipxe")
	base := f.TempDir()
	art := filepath.Join(base, "out")
	_ = os.MkdirAll(art, 0o755)
	_ = os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644)
	_ = os.WriteFile(filepath.Join(art, "worker-kernel"), []byte("KERNEL"), 0o644)
	_ = os.Symlink("../secret", filepath.Join(art, "escape"))
	s := &Server{Artifacts: art, Loaders: art, Booter: BooterFunc(func(context.Context, Machine) (*Boot, error) {
		return &Boot{Name: "x", Kernel: "worker-kernel"}, nil
	})}
	h, err := s.Handler()
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest(http.MethodGet, "http://x/", nil)
		if err != nil {
			t.Skip()
		}
		req.URL.Path = p
		req.URL.RawPath = ""
		req.RequestURI = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "SECRET") {
			t.Fatalf("path %q served the secret", p)
		}
	})
}
