package httpboot

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkHTTPInitrd sends a 128 MiB initrd to 200 concurrent clients
// (one Go HTTP client in this process) from this server and from nginx
// (started here with its own config on a loopback port, sendfile on), and
// reports the ratio of their wall times (>1: we are faster; best of two
// interleaved runs each).
func BenchmarkHTTPInitrd(b *testing.B) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		b.Skipf("nginx not installed (nginx-light): %v", err)
	}
	dir := b.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(filepath.Join(www, "artifacts"), 0o755); err != nil {
		b.Fatal(err)
	}
	const size = 128 << 20
	f, err := os.Create(filepath.Join(www, "artifacts", "worker-initrd.img"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	ours := startOursHTTP(b, filepath.Join(www, "artifacts"))
	ref := startNginx(b, nginx, dir, www)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, DisableCompression: true}}
	for range b.N {
		tOurs, tRef := time.Duration(1<<62), time.Duration(1<<62)
		for range 2 {
			tOurs = min(tOurs, httpStorm(b, client, ours+"/artifacts/worker-initrd.img?mac=52:54:00:00:00:01", size, 200))
			tRef = min(tRef, httpStorm(b, client, ref+"/artifacts/worker-initrd.img", size, 200))
		}
		ratio := tRef.Seconds() / tOurs.Seconds()
		gib := float64(200*size) / (1 << 30)
		b.ReportMetric(tOurs.Seconds(), "s-ours")
		b.ReportMetric(tRef.Seconds(), "s-nginx")
		b.ReportMetric(gib/tOurs.Seconds(), "GiB/s")
		b.ReportMetric(ratio, "x-vs-nginx")
		b.Logf("HTTP 128 MiB initrd to 200 clients: ours %.2fs (%.2f GiB/s), nginx %.2fs: %.2fx", tOurs.Seconds(), gib/tOurs.Seconds(), tRef.Seconds(), ratio)
	}
}

func startOursHTTP(b *testing.B, artifacts string) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Artifacts: artifacts, Registry: prometheus.NewRegistry(),
		Booter: BooterFunc(func(context.Context, Machine) (*Boot, error) { return nil, ErrUnknown })}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done; s.Close() })
	return "http://" + ln.Addr().String()
}

func startNginx(b *testing.B, bin, dir, www string) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tmp := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		b.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes auto;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  types { application/octet-stream img; }
  server {
    listen 127.0.0.1:%[2]d;
    root %[3]s;
  }
}
`, tmp, port, www)
	cf := filepath.Join(tmp, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf, "-p", tmp, "-e", filepath.Join(tmp, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// SIGTERM: fast shutdown of the master and its workers.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	u := "http://127.0.0.1:" + strconv.Itoa(port)
	for range 50 {
		if r, err := http.Head(u + "/artifacts/worker-initrd.img"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return u
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(tmp, "error.log"))
	b.Fatalf("nginx on port %d does not serve: %s\n%s", port, out.String(), log)
	return ""
}

func httpStorm(b *testing.B, c *http.Client, url string, size int64, n int) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(url)
			if err != nil {
				errs <- err
				return
			}
			got, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != 200 || got != size) {
				err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, got)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		b.Errorf("%s: %v", url, err)
	}
	return d
}
