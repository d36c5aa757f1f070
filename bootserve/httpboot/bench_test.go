package httpboot

import (
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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/pkg/benchref"
)

// BenchmarkHTTPInitrd sends a 128 MiB initrd to 200 concurrent clients
// (one Go HTTP client in this process) from this server and from nginx
// (started here with its own config on a loopback port, sendfile on), and
// reports the ratio of their wall times (>1: we are faster; best of two
// interleaved runs each).
func BenchmarkHTTPInitrd(b *testing.B) {
	nginx := benchref.Tool(b, "nginx", "nginx-light")
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
		tOurs, tRef, ratio := benchref.Compare(b, "nginx",
			func() time.Duration {
				return httpStorm(b, client, ours+"/artifacts/worker-initrd.img?mac=52:54:00:00:00:01", size, 200)
			},
			func() time.Duration { return httpStorm(b, client, ref+"/artifacts/worker-initrd.img", size, 200) })
		gib := float64(200*size) / (1 << 30)
		b.ReportMetric(gib/tOurs.Seconds(), "GiB/s")
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
error_log stderr warn;
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
	// SIGTERM at the end is nginx's fast shutdown of the master and its workers.
	u := "http://127.0.0.1:" + strconv.Itoa(port)
	benchref.Start(b, exec.Command(bin, "-c", cf, "-p", tmp, "-e", "stderr"), func() error {
		r, err := http.Head(u + "/artifacts/worker-initrd.img")
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("HEAD the initrd: %s", r.Status)
		}
		return nil
	})
	return u
}

func httpStorm(b *testing.B, c *http.Client, url string, size int64, n int) time.Duration {
	return benchref.Storm(b, n, func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		got, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != 200 || got != size) {
			err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, got)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", url, err)
		}
		return nil
	})
}
